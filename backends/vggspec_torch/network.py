"""The torch network of a plan: torchvision's VGG module tree, built from the torch table.

Each plan layer's modules are its entry of :mod:`vggspec.frameworks.torch_modules` (which the code
generator prints too), appended in torchvision's order, so the state dict keys are torchvision's
(``features.0.weight`` ... ``classifier.6.bias``) and its checkpoints load with ``strict=True``.
The network keeps its module slots (``VGG.slots``, counted from the same table): freezing, feature
extraction and the split for cached features ask it where a plan layer sits. The network takes
NCHW float32 tensors. This module imports torch; the backend imports it only when a method needs it.
"""

from __future__ import annotations

from typing import Callable, Collection, Mapping, Optional

import torch
from torch import nn

from vggspec.errors import BackendError, VggspecError
from vggspec.frameworks.torch_modules import (
    AVGPOOL,
    CLASSIFIER,
    FEATURES,
    INITIALISATION,
    POOL,
    ModuleSlots,
    module_slots,
    torch_modules,
)
from vggspec.planner.lower import Plan

NAMESPACES = {"nn": nn, "nn.init": nn.init}  # where the table's names live


class VGG(nn.Module):
    """``features`` (nn.Sequential), then either the top or a global pooling.

    With a top: ``avgpool`` (adaptive average pooling to the flatten map's H, W, as torchvision's
    ``(7, 7)``), flatten in C,H,W order, ``classifier`` (whose last module is the classifier activation
    when ``classifier_activation``). Without one: ``pool`` (global average or max pooling, flattened to
    (N, C)) or nothing (the feature maps). ``slots``: where each plan layer's modules sit.
    """

    def __init__(
        self,
        features: nn.Sequential,
        avgpool: Optional[nn.Module] = None,
        classifier: Optional[nn.Sequential] = None,
        pool: Optional[nn.Module] = None,
        classifier_activation: bool = False,
        slots: Optional[Mapping[str, ModuleSlots]] = None,
    ):
        super().__init__()
        self.features = features
        self.classifier_activation = classifier_activation
        self.slots: dict[str, ModuleSlots] = dict(slots or {})
        if classifier is not None:
            self.avgpool: nn.Module = avgpool if avgpool is not None else nn.Identity()
            self.classifier: nn.Sequential = classifier
        else:
            self.pool: Optional[nn.Module] = pool

    @property
    def has_top(self) -> bool:
        return hasattr(self, "classifier")

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """NCHW images -> outputs; ``logits=True`` leaves out the classifier activation (for training)."""
        x = self.features(x)
        if not self.has_top:
            return x if self.pool is None else torch.flatten(self.pool(x), 1)
        x = torch.flatten(self.avgpool(x), 1)
        if logits and self.classifier_activation:
            return self.classifier[:-1](x)
        return self.classifier(x)


def initialise(model: nn.Module) -> None:
    """torchvision's VGG initialisation (the table's :data:`INITIALISATION`), module by module in order."""
    for module in model.modules():
        for parameter, initialiser in INITIALISATION.get(f"nn.{type(module).__name__}", ()):
            tensor = getattr(module, parameter)
            if tensor is not None:
                initialiser.make(NAMESPACES, tensor)


def build_network(plan: Plan) -> VGG:
    """The freshly initialised torch network of ``plan`` (torchvision's VGG initialisation)."""
    parts: dict[str, list[nn.Module]] = {FEATURES: [], CLASSIFIER: [], AVGPOOL: [], POOL: []}
    for layer in plan.layers:
        try:
            placed = torch_modules(layer, plan)
        except VggspecError as error:
            raise BackendError(str(error)) from None
        if placed.attribute:
            parts[placed.attribute] += [entry.make(NAMESPACES) for entry in placed.modules]
    classifier = plan.classifier  # None in a plan cut inside its head (feature extraction)
    top = bool(parts[AVGPOOL])  # the plan flattens its map
    model = VGG(
        nn.Sequential(*parts[FEATURES]),
        avgpool=parts[AVGPOOL][0] if top else None,
        classifier=nn.Sequential(*parts[CLASSIFIER]) if top else None,
        pool=parts[POOL][0] if parts[POOL] else None,
        classifier_activation=classifier is not None and classifier.activation is not None,
        slots=module_slots(plan),
    )
    initialise(model)
    return model


def output_points(net: VGG, plan: Plan) -> dict[str, str]:
    """Where each plan layer's output is read in ``net``: the path of its last module (``features.3``), or
    ``input``, ``flatten`` (the map ``avgpool`` gives, before it is flattened) or ``pool``; a dropout layer's
    is its dense layer's (the identity at inference)."""
    points: dict[str, str] = {}
    previous = "input"
    for layer in plan.layers:
        output = torch_modules(layer, plan).output
        points[layer.name] = previous if output == "previous" else output or net.slots[layer.name].output_path
        previous = points[layer.name]
    return points


def run_tapped(
    net: VGG, x: torch.Tensor, points: Collection[str], record: Callable[[str, torch.Tensor], None]
) -> torch.Tensor:
    """Run ``net`` on NCHW ``x`` as ``forward`` does, calling ``record(point, tensor)`` at each of ``points``
    (see :func:`output_points`) as it passes it."""
    if "input" in points:
        record("input", x)
    for index, module in enumerate(net.features):
        x = module(x)
        if f"{FEATURES}.{index}" in points:
            record(f"{FEATURES}.{index}", x)
    if net.has_top:
        x = net.avgpool(x)
        if "flatten" in points:
            record("flatten", x)
        x = torch.flatten(x, 1)
        for index, module in enumerate(net.classifier):
            x = module(x)
            if f"{CLASSIFIER}.{index}" in points:
                record(f"{CLASSIFIER}.{index}", x)
    elif net.pool is not None:
        x = torch.flatten(net.pool(x), 1)
        if "pool" in points:
            record("pool", x)
    return x


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """NCHW -> NHWC for maps; (N, F) unchanged. Detached CPU copy (later in-place ReLUs must not change it)."""
    x = x.detach().cpu()
    return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).clone(memory_format=torch.contiguous_format)


def layer_outputs(model: VGG, plan: Plan, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every plan layer's output for NCHW ``images`` (channels last, on the CPU); ``flatten`` gives the
    features in Keras' H,W,C order. Call in eval mode under ``torch.no_grad()``."""
    points = output_points(model, plan)
    recorded: dict[str, torch.Tensor] = {}

    def record(point: str, x: torch.Tensor) -> None:
        recorded[point] = _channels_last(x)

    run_tapped(model, images, set(points.values()), record)
    if "flatten" in recorded:  # the NHWC map, as Keras flattens it
        recorded["flatten"] = recorded["flatten"].reshape(len(images), -1)
    return {name: recorded[point] for name, point in points.items()}


class FeatureExtractor(nn.Module):
    """``{key: output}`` of the plan layers in ``outputs`` (``{key: plan layer name}``), NCHW for maps
    and (N, features) after flatten (in torch's C,H,W order); ``net`` was built from a plan cut after
    the deepest of them, so nothing past it runs. A layer's output is that of its last module (after
    a fused activation); a dropout's is its input (the identity in eval mode).

    In-place activations are turned off: a tapped tensor must not change under a later module,
    and autograd must be able to differentiate through every tap.
    """

    def __init__(self, net: VGG, plan: Plan, outputs: Mapping[str, str], trainable: bool = True):
        super().__init__()
        self.net = net
        self.frozen = not trainable
        self.keys = list(outputs)
        for module in net.modules():
            if isinstance(module, (nn.ReLU, nn.ReLU6)):
                module.inplace = False
        points = output_points(net, plan)
        self.taps: dict[str, list[str]] = {}  # point (see output_points) -> the keys read there
        for key, name in outputs.items():
            self.taps.setdefault(points[name], []).append(key)
        if self.frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        """A frozen extractor stays in eval mode (batch norm on its running statistics)."""
        return super().train(mode and not self.frozen)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """NCHW images -> ``{key: output}`` in the order of ``outputs``."""
        found: dict[str, torch.Tensor] = {}

        def record(point: str, value: torch.Tensor) -> None:
            for key in self.taps[point]:
                found[key] = torch.flatten(value, 1) if point == "flatten" else value

        run_tapped(self.net, x, self.taps, record)
        return {key: found[key] for key in self.keys}
