"""Lower a checked spec to a Plan: the framework-free list of layers.

The plan is the single source of architectural truth. Every backend compiles
it layer by layer and is tested against its names, output shapes and
parameter counts; nobody re-reads the YAML.

Conventions:
- shapes leave out the batch axis and are channels last: (height, width, channels)
  for feature maps, (features,) after flatten or global pooling;
- layer names are those of ``keras.applications.VGG16``: ``blockB_convK``,
  ``blockB_pool``, ``flatten``, ``fc1``, ``fc2``, ``predictions``; batch norm and
  its activation add ``blockB_convK_bn`` and ``blockB_convK_act``;
- weights are listed in the canonical layout of :mod:`vggspec.weights.layout`
  (conv kernel HWIO, dense kernel (in, out)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from vggspec.spec.model import LRN, Conv, MaxPool, Spec

# Batch normalization as torchvision's vggNN_bn has it: eps 1e-5, running averages
# updated with 0.1 of each batch (Keras calls that momentum 0.9).
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9

KERAS_TYPE = {
    "input": "InputLayer",
    "conv": "Conv2D",
    "batch_norm": "BatchNormalization",
    "activation": "Activation",
    "lrn": "LocalResponseNormalization",
    "max_pool": "MaxPooling2D",
    "flatten": "Flatten",
    "dense": "Dense",
    "dropout": "Dropout",
    "global_avg_pool": "GlobalAveragePooling2D",
    "global_max_pool": "GlobalMaxPooling2D",
}


@dataclass(frozen=True)
class PlanLayer:
    """One layer of the plan.

    ``weights`` lists (name, shape) of its arrays in the canonical layout, in the
    order Keras keeps them; ``origin`` is the path of the spec field the layer
    comes from (for error messages).
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: tuple[tuple[str, tuple[int, ...]], ...] = ()
    trainable_params: int = 0
    non_trainable_params: int = 0
    macs: int = 0
    origin: tuple = ()

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def output_size(self) -> int:
        """Values in this layer's output for one image."""
        return math.prod(self.output_shape)

    @property
    def type_name(self) -> str:
        """The Keras class name, as ``model.summary()`` shows it."""
        return KERAS_TYPE[self.kind]


@dataclass(frozen=True)
class Plan:
    """The lowered network. ``input_shape`` is (height, width, channels)."""

    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[PlanLayer, ...]
    preprocessing: str
    classes: Optional[int]

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return sum(layer.non_trainable_params for layer in self.layers)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass of one image."""
        return sum(layer.macs for layer in self.layers)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape

    @property
    def activations_per_image(self) -> int:
        """Values in all the layers' outputs (the input included) for one image."""
        return sum(layer.output_size for layer in self.layers)

    def layer(self, name: str) -> PlanLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def weighted_layers(self) -> list[PlanLayer]:
        """Layers that own arrays, in order."""
        return [layer for layer in self.layers if layer.weights]


def _conv_layers(
    spec: Spec, height: int, width: int, channels: int, block: int, index: int, conv: Conv, origin: tuple
) -> list[PlanLayer]:
    name = f"block{block}_conv{index}"
    kernel = (conv.kernel, conv.kernel, channels, conv.filters)
    params = conv.kernel * conv.kernel * channels * conv.filters + conv.filters
    shape = (height, width, conv.filters)
    layers = [
        PlanLayer(
            name=name,
            kind="conv",
            output_shape=shape,
            attrs={
                "filters": conv.filters,
                "kernel_size": conv.kernel,
                "strides": 1,
                "padding": "same",
                "activation": None if spec.batch_norm else spec.activation,
            },
            weights=(("kernel", kernel), ("bias", (conv.filters,))),
            trainable_params=params,
            macs=height * width * conv.kernel * conv.kernel * channels * conv.filters,
            origin=origin,
        )
    ]
    if spec.batch_norm:
        c = conv.filters
        layers.append(
            PlanLayer(
                name=f"{name}_bn",
                kind="batch_norm",
                output_shape=shape,
                attrs={"epsilon": BATCH_NORM_EPSILON, "momentum": BATCH_NORM_MOMENTUM},
                weights=(("gamma", (c,)), ("beta", (c,)), ("moving_mean", (c,)), ("moving_variance", (c,))),
                trainable_params=2 * c,
                non_trainable_params=2 * c,
                origin=origin,
            )
        )
        layers.append(
            PlanLayer(
                name=f"{name}_act",
                kind="activation",
                output_shape=shape,
                attrs={"activation": spec.activation},
                origin=origin,
            )
        )
    return layers


def _dense(name: str, inputs: int, units: int, activation: Optional[str], origin: tuple) -> PlanLayer:
    return PlanLayer(
        name=name,
        kind="dense",
        output_shape=(units,),
        attrs={"units": units, "activation": activation},
        weights=(("kernel", (inputs, units)), ("bias", (units,))),
        trainable_params=inputs * units + units,
        macs=inputs * units,
        origin=origin,
    )


def lower_to_plan(spec: Spec) -> Plan:
    """The plan of a checked spec (pure arithmetic: nothing is allocated)."""
    height, width, channels = spec.input_shape
    layers = [PlanLayer(name="input_layer", kind="input", output_shape=spec.input_shape, origin=("input_shape",))]
    block, index, lrn_count = 1, 0, 0
    for position, token in enumerate(spec.layers):
        origin = ("layers", position)
        if isinstance(token, Conv):
            index += 1
            layers += _conv_layers(spec, height, width, channels, block, index, token, origin)
            channels = token.filters
        elif isinstance(token, LRN):
            lrn_count += 1
            suffix = "" if lrn_count == 1 else str(lrn_count)
            layers.append(
                PlanLayer(
                    name=f"block{block}_lrn{suffix}",
                    kind="lrn",
                    output_shape=(height, width, channels),
                    attrs={"size": spec.lrn.size, "alpha": spec.lrn.alpha, "beta": spec.lrn.beta, "k": spec.lrn.k},
                    origin=origin,
                )
            )
        elif isinstance(token, MaxPool):
            height, width = height // 2, width // 2
            layers.append(
                PlanLayer(
                    name=f"block{block}_pool",
                    kind="max_pool",
                    output_shape=(height, width, channels),
                    attrs={"pool_size": 2, "strides": 2},
                    origin=origin,
                )
            )
            block, index, lrn_count = block + 1, 0, 0

    if spec.include_top:
        features = height * width * channels
        layers.append(
            PlanLayer(
                name="flatten",
                kind="flatten",
                output_shape=(features,),
                attrs={"from_shape": (height, width, channels)},
                origin=("include_top",),
            )
        )
        for number, units in enumerate(spec.fc, start=1):
            layers.append(_dense(f"fc{number}", features, units, spec.activation, ("fc", number - 1)))
            if spec.dropout > 0:
                layers.append(
                    PlanLayer(
                        name=f"fc{number}_dropout",
                        kind="dropout",
                        output_shape=(units,),
                        attrs={"rate": spec.dropout},
                        origin=("dropout",),
                    )
                )
            features = units
        layers.append(_dense("predictions", features, spec.classes, spec.classifier_activation, ("classes",)))
    elif spec.pooling is not None:
        kind = "global_avg_pool" if spec.pooling == "avg" else "global_max_pool"
        layers.append(PlanLayer(name=f"{spec.pooling}_pool", kind=kind, output_shape=(channels,), origin=("pooling",)))
    return Plan(
        name=spec.name,
        input_shape=spec.input_shape,
        layers=tuple(layers),
        preprocessing=spec.preprocessing,
        classes=spec.classes if spec.include_top else None,
    )
