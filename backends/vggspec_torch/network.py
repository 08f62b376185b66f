"""The torch network of a plan: torchvision's VGG module tree, built from the plan.

Module order and paths come from ``vggspec.weights.layout.torch_modules`` alone,
so the state dict keys are torchvision's (``features.0.weight`` ...
``classifier.6.bias``) and its checkpoints load with ``strict=True``.
The network takes NCHW float32 tensors. This module imports torch; the
backend imports it only when a method needs it.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from vggspec.planner.lower import Plan, PlanLayer
from vggspec.weights.layout import TorchModule, torch_modules

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


def _feature_module(module: TorchModule) -> nn.Module:
    layer, kind = module.layer, module.kind
    if kind == "conv":
        kernel = layer.attrs["kernel_size"]
        in_channels = layer.weights[0][1][2]  # kernel HWIO
        return nn.Conv2d(
            in_channels, layer.attrs["filters"], kernel_size=kernel, stride=layer.attrs["strides"], padding=kernel // 2
        )
    if kind == "batch_norm":
        # torch's momentum weighs the new batch, Keras' the running average (rounded: 1 - 0.9 != 0.1)
        return nn.BatchNorm2d(
            layer.output_shape[-1], eps=layer.attrs["epsilon"], momentum=round(1.0 - layer.attrs["momentum"], 12)
        )
    if kind == "activation":
        return ACTIVATIONS[module.option]()
    if kind == "lrn":
        a = layer.attrs
        return nn.LocalResponseNorm(a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])
    if kind == "max_pool":
        return nn.MaxPool2d(kernel_size=layer.attrs["pool_size"], stride=layer.attrs["strides"])
    raise ValueError(f"layer {layer.name}: no torch module for the plan kind {kind!r}")


def _classifier_module(module: TorchModule) -> nn.Module:
    layer, kind = module.layer, module.kind
    if kind == "dense":
        (_, (inputs, units)), _ = layer.weights
        return nn.Linear(inputs, units)
    if kind == "activation":
        return ACTIVATIONS[module.option]()
    if kind == "dropout":
        return nn.Dropout(p=module.option)
    if kind == "classifier_activation":
        return CLASSIFIER_ACTIVATIONS[module.option]()
    raise ValueError(f"layer {layer.name}: no torch module for the plan kind {kind!r}")


def _global_pool(plan: Plan) -> nn.Module:
    kinds = {layer.kind for layer in plan.layers}
    if "global_avg_pool" in kinds:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if "global_max_pool" in kinds:
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
    """The freshly initialised torch network of ``plan``."""
    modules = torch_modules(plan)
    features = nn.Sequential(*[_feature_module(m) for m in modules if m.path.startswith("features.")])
    head = [_classifier_module(m) for m in modules if m.path.startswith("classifier.")]
    if head:
        height, width, _ = _flatten_layer(plan).attrs["from_shape"]
        model = VGG(
            features,
            avgpool=nn.AdaptiveAvgPool2d((height, width)),
            classifier=nn.Sequential(*head),
            classifier_activation=modules[-1].kind == "classifier_activation",
        )
    else:
        model = VGG(features, pool=_global_pool(plan))
    initialise(model)
    return model


def _flatten_layer(plan: Plan) -> PlanLayer:
    return next(layer for layer in plan.layers if layer.kind == "flatten")


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """NCHW -> NHWC for maps; (N, F) unchanged. Detached CPU copy (later in-place ReLUs must not change it)."""
    x = x.detach().cpu()
    return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).clone(memory_format=torch.contiguous_format)


def layer_outputs(model: VGG, plan: Plan, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every plan layer's output for NCHW ``images`` (channels last, on the CPU), walking the modules
    in the order ``forward`` runs them. Call in eval mode under ``torch.no_grad()``.

    A conv with a fused activation gives its output after the activation; ``flatten``
    gives the features in Keras' H,W,C order; a dropout layer gives its input.
    """
    recorded: dict[str, torch.Tensor] = {}
    modules = torch_modules(plan)
    x = images
    for module in (m for m in modules if m.path.startswith("features.")):
        x = model.get_submodule(module.path)(x)
        recorded[module.layer.name] = _channels_last(x)
    if model.has_top:
        x = model.avgpool(x)
        recorded[_flatten_layer(plan).name] = _channels_last(x).reshape(x.shape[0], -1)  # H,W,C order
        x = torch.flatten(x, 1)
        for module in (m for m in modules if m.path.startswith("classifier.")):
            x = model.get_submodule(module.path)(x)
            if module.kind != "dropout":
                recorded[module.layer.name] = _channels_last(x)
    else:
        pooled = _channels_last(model.pool(x))
    outputs: dict[str, torch.Tensor] = {}
    previous = ""
    for layer in plan.layers:
        if layer.kind == "input":
            outputs[layer.name] = _channels_last(images)
        elif layer.kind == "dropout":
            outputs[layer.name] = outputs[previous]
        elif layer.kind in ("global_avg_pool", "global_max_pool"):
            outputs[layer.name] = pooled
        else:
            outputs[layer.name] = recorded[layer.name]
        previous = layer.name
    return outputs
