"""The torch network of a plan: torchvision's VGG module tree, built from the plan's typed layers.

Modules are appended in torchvision's order (:mod:`vggspec.weights.torchvision` writes the
order down, and :func:`build_network` checks every layer landed where it says), so the state
dict keys are torchvision's (``features.0.weight`` ... ``classifier.6.bias``) and its
checkpoints load with ``strict=True``. The network takes NCHW float32 tensors. This module
imports torch; the backend imports it only when a method needs it.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import torch
from torch import nn

from vggspec.errors import BackendError
from vggspec.planner.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    InputLayer,
    LocalResponseNormalization,
    MaxPooling2D,
    PlanLayer,
)
from vggspec.planner.lower import Plan
from vggspec.weights.torchvision import module_slots

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),  # in place, as torchvision
    "relu6": lambda: nn.ReLU6(inplace=True),
    "elu": nn.ELU,  # alpha 1, as Keras
    "selu": nn.SELU,
    "gelu": nn.GELU,  # exact (erf), as Keras' default approximate=False
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

CLASSIFIER_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "softmax": lambda: nn.Softmax(dim=1),
    "sigmoid": nn.Sigmoid,
}


class VGG(nn.Module):
    """``features`` (nn.Sequential), then either the top or a global pooling.

    With a top: ``avgpool`` (adaptive average pooling to the flatten map's H, W,
    as torchvision's ``(7, 7)``), flatten in C,H,W order, ``classifier`` (whose last
    module is the classifier activation when ``classifier_activation``).
    Without one: ``pool`` (global average or max pooling to (N, C), or identity).
    """

    def __init__(
        self,
        features: nn.Sequential,
        avgpool: Optional[nn.Module] = None,
        classifier: Optional[nn.Sequential] = None,
        pool: Optional[nn.Module] = None,
        classifier_activation: bool = False,
    ):
        super().__init__()
        self.features = features
        self.classifier_activation = classifier_activation
        if classifier is not None:
            self.avgpool: nn.Module = avgpool if avgpool is not None else nn.Identity()
            self.classifier: nn.Sequential = classifier
        else:
            self.pool: nn.Module = pool if pool is not None else nn.Identity()

    @property
    def has_top(self) -> bool:
        return hasattr(self, "classifier")

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """NCHW images -> outputs; ``logits=True`` leaves out the classifier activation (for training)."""
        x = self.features(x)
        if not self.has_top:
            return self.pool(x)
        x = torch.flatten(self.avgpool(x), 1)
        if logits and self.classifier_activation:
            return self.classifier[:-1](x)
        return self.classifier(x)


def layer_modules(layer: PlanLayer, plan: Plan) -> list[nn.Module]:
    """The torch modules of one plan layer, in torchvision's order (none for those outside the two sequences)."""
    if isinstance(layer, Conv2D):
        conv = nn.Conv2d(
            layer.input_channels,
            layer.filters,
            kernel_size=layer.kernel_size,
            stride=layer.strides,
            padding=layer.kernel_size // 2,
        )
        return [conv] + ([ACTIVATIONS[layer.activation]()] if layer.activation else [])
    if isinstance(layer, BatchNormalization):
        # torch's momentum weighs the new batch, Keras' the running average (rounded: 1 - 0.9 != 0.1)
        return [nn.BatchNorm2d(layer.channels, eps=layer.epsilon, momentum=round(1.0 - layer.momentum, 12))]
    if isinstance(layer, Activation):
        return [ACTIVATIONS[layer.activation]()]
    if isinstance(layer, LocalResponseNormalization):
        return [nn.LocalResponseNorm(layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k)]
    if isinstance(layer, MaxPooling2D):
        return [nn.MaxPool2d(kernel_size=layer.pool_size, stride=layer.strides)]
    if isinstance(layer, Dense):
        linear = nn.Linear(layer.input_features, layer.units)
        if not layer.classifier:  # torchvision: Linear, activation, Dropout (there even at rate 0)
            rate = next((d.rate for d in plan.layers if isinstance(d, Dropout) and d.follows == layer.name), 0.0)
            return [linear, ACTIVATIONS[str(layer.activation)](), nn.Dropout(p=rate)]
        return [linear] + ([CLASSIFIER_ACTIVATIONS[layer.activation]()] if layer.activation else [])
    if isinstance(layer, (InputLayer, Flatten, Dropout, GlobalAveragePooling2D, GlobalMaxPooling2D)):
        return []  # the input; flatten and global pooling are VGG.forward's; dropout is Dense's
    raise BackendError(f"plan {plan.name}: layer {layer.name}: no torch module for a {layer.type_name}")


def _global_pool(plan: Plan) -> nn.Module:
    last = plan.layers[-1]
    if isinstance(last, GlobalAveragePooling2D):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if isinstance(last, GlobalMaxPooling2D):
        return nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
    return nn.Identity()


def initialise(model: nn.Module) -> None:
    """torchvision's VGG initialisation: conv He-normal (fan_out), BN 1/0, linear N(0, 0.01), biases 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


def build_network(plan: Plan) -> VGG:
    """The freshly initialised torch network of ``plan`` (torchvision's VGG initialisation)."""
    sequences: dict[str, list[nn.Module]] = {"features": [], "classifier": []}
    slots = module_slots(plan)
    for layer in plan.layers:
        modules = layer_modules(layer, plan)
        if not modules:
            continue
        slot = slots.get(layer.name)
        sequence = "classifier" if isinstance(layer, Dense) else "features"
        placed = (sequence, len(sequences[sequence]), len(modules))
        if slot is None or (slot.sequence, slot.first, slot.count) != placed:
            raise BackendError(
                f"plan {plan.name}: layer {layer.name}: its torch modules do not sit where "
                f"torchvision's layout puts them ({slot})"
            )
        sequences[sequence] += modules
    features = nn.Sequential(*sequences["features"])
    flatten = next((layer for layer in plan.layers if isinstance(layer, Flatten)), None)
    classifier = plan.classifier  # None in a plan cut inside its head (feature extraction)
    if flatten is not None:
        height, width, _ = flatten.input_shape
        model = VGG(
            features,
            avgpool=nn.AdaptiveAvgPool2d((height, width)),
            classifier=nn.Sequential(*sequences["classifier"]),
            classifier_activation=classifier is not None and classifier.activation is not None,
        )
    else:
        model = VGG(features, pool=_global_pool(plan))
    initialise(model)
    return model


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """NCHW -> NHWC for maps; (N, F) unchanged. Detached CPU copy (later in-place ReLUs must not change it)."""
    x = x.detach().cpu()
    return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).clone(memory_format=torch.contiguous_format)


def layer_outputs(model: VGG, plan: Plan, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every plan layer's output for NCHW ``images`` (channels last, on the CPU), running the modules
    in the order ``forward`` does. Call in eval mode under ``torch.no_grad()``.

    A layer's output is that of its last module (a conv or dense after its fused activation);
    ``flatten`` gives the features in
    Keras' H,W,C order; a dropout layer gives its input (inference); global pooling, ``pool``'s.
    """
    slots = module_slots(plan)
    ends = {slot.output_path: name for name, slot in slots.items()}
    recorded: dict[str, torch.Tensor] = {"": _channels_last(images)}
    x = images
    for index, module in enumerate(model.features):
        x = module(x)
        if f"features.{index}" in ends:
            recorded[ends[f"features.{index}"]] = _channels_last(x)
    if model.has_top:
        x = model.avgpool(x)
        pooled = _channels_last(x).reshape(x.shape[0], -1)  # H,W,C order, as Keras flattens
        x = torch.flatten(x, 1)
        for index, module in enumerate(model.classifier):
            x = module(x)
            path = f"classifier.{index}"
            if path in ends:  # a hidden dense layer ends with its Dropout: the identity in eval mode
                recorded[ends[path]] = _channels_last(x)
    else:
        pooled = _channels_last(model.pool(x))
    outputs: dict[str, torch.Tensor] = {}
    previous = ""
    for layer in plan.layers:
        if isinstance(layer, InputLayer):
            outputs[layer.name] = recorded[""]
        elif isinstance(layer, Dropout):
            outputs[layer.name] = outputs[previous]
        elif isinstance(layer, (Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D)):
            outputs[layer.name] = pooled
        else:
            outputs[layer.name] = recorded[layer.name]
        previous = layer.name
    return outputs


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
        slots = module_slots(plan)
        self.taps: dict[str, list[str]] = {}  # module path ("features.3", "input", "flatten", "pool") -> keys
        previous = "input"
        for layer in plan.layers:
            if isinstance(layer, InputLayer):
                where = "input"
            elif isinstance(layer, Dropout):
                where = previous
            elif isinstance(layer, Flatten):
                where = "flatten"
            elif isinstance(layer, (GlobalAveragePooling2D, GlobalMaxPooling2D)):
                where = "pool"
            else:
                where = slots[layer.name].output_path
            for key, name in outputs.items():
                if name == layer.name:
                    self.taps.setdefault(where, []).append(key)
            previous = where
        if self.frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        """A frozen extractor stays in eval mode (batch norm on its running statistics)."""
        return super().train(mode and not self.frozen)

    def _tap(self, where: str, x: torch.Tensor, found: dict[str, torch.Tensor]) -> None:
        for key in self.taps.get(where, ()):
            found[key] = x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """NCHW images -> ``{key: output}`` in the order of ``outputs``."""
        found: dict[str, torch.Tensor] = {}
        self._tap("input", x, found)
        for index, module in enumerate(self.net.features):
            x = module(x)
            self._tap(f"features.{index}", x, found)
        if self.net.has_top:
            x = torch.flatten(self.net.avgpool(x), 1)
            self._tap("flatten", x, found)
            for index, module in enumerate(self.net.classifier):
                x = module(x)
                self._tap(f"classifier.{index}", x, found)
        elif "pool" in self.taps:
            self._tap("pool", self.net.pool(x), found)
        return {key: found[key] for key in self.keys}
