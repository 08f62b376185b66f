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
- layers are the typed dataclasses of :mod:`vggspec.planner.layers`, their weights
  listed in the canonical layout of :mod:`vggspec.weights.canonical`
  (conv kernel HWIO, dense kernel (in, out)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

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
    Origin,
    PlanLayer,
)
from vggspec.spec.model import LRN, Conv, MaxPool, Spec

# Batch normalization as torchvision's vggNN_bn has it: eps 1e-5, running averages
# updated with 0.1 of each batch (Keras calls that momentum 0.9).
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9


@dataclass(frozen=True)
class Plan:
    """The lowered network. ``input_shape`` is (height, width, channels).

    ``initialisation`` names how backends fill a freshly built model: "native" is each
    framework's usual scheme for VGG (Keras: its layers' defaults, Glorot-uniform kernels and
    zero biases; torch: torchvision's VGG scheme), which is what users of either know.
    """

    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[PlanLayer, ...]
    preprocessing: str
    classes: Optional[int]
    initialisation: str = "native"

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
    def depth(self) -> int:
        """Weight layers as the paper counts them (VGG16: 16): convolutions and dense layers, not batch norm."""
        return sum(1 for layer in self.layers if isinstance(layer, (Conv2D, Dense)))

    @property
    def activations_per_image(self) -> int:
        """Values in all the layers' outputs (the input included) for one image."""
        return sum(layer.output_size for layer in self.layers)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape

    @property
    def classifier(self) -> Optional[Dense]:
        """The predictions layer (None without a top)."""
        return next((layer for layer in self.layers if isinstance(layer, Dense) and layer.classifier), None)

    def layer(self, name: str) -> PlanLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def up_to(self, name: str) -> Plan:
        """This plan cut after the layer ``name`` (for feature extraction: nothing past it is built)."""
        names = [layer.name for layer in self.layers]
        return dataclasses.replace(
            self, layers=self.layers[: names.index(name) + 1], classes=self.classes if name == names[-1] else None
        )

    def weighted_layers(self) -> list[PlanLayer]:
        """Layers that own arrays, in order."""
        return [layer for layer in self.layers if layer.weights]


def _conv_layers(
    spec: Spec, shape: tuple[int, int, int], block: int, index: int, conv: Conv, origin: Origin
) -> list[PlanLayer]:
    height, width, channels = shape
    name = f"block{block}_conv{index}"
    out = (height, width, conv.filters)
    layers: list[PlanLayer] = [
        Conv2D(
            name=name,
            output_shape=out,
            origin=origin,
            filters=conv.filters,
            kernel_size=conv.kernel,
            input_channels=channels,
            activation=None if spec.batch_norm else spec.activation,
        )
    ]
    if spec.batch_norm:
        layers.append(
            BatchNormalization(
                name=f"{name}_bn",
                output_shape=out,
                origin=origin,
                channels=conv.filters,
                epsilon=BATCH_NORM_EPSILON,
                momentum=BATCH_NORM_MOMENTUM,
            )
        )
        layers.append(Activation(name=f"{name}_act", output_shape=out, origin=origin, activation=spec.activation))
    return layers


def _head(spec: Spec, flattened: tuple[int, int, int]) -> list[PlanLayer]:
    """flatten, fc1.. (each with its dropout), predictions."""
    height, width, channels = flattened
    features = height * width * channels
    layers: list[PlanLayer] = [
        Flatten(name="flatten", output_shape=(features,), origin=("include_top",), input_shape=flattened)
    ]
    widths = [(f"fc{number}", units, ("fc", number - 1)) for number, units in enumerate(spec.fc, start=1)]
    for position, (name, units, origin) in enumerate([*widths, ("predictions", spec.classes, ("classes",))]):
        classifier = position == len(widths)  # the last: predictions
        layers.append(
            Dense(
                name=name,
                output_shape=(units,),
                origin=origin,
                units=units,
                input_features=features,
                activation=spec.classifier_activation if classifier else spec.activation,
                classifier=classifier,
                reads_flattened=flattened if position == 0 else None,
            )
        )
        if not classifier and spec.dropout > 0:
            layers.append(
                Dropout(
                    name=f"{name}_dropout", output_shape=(units,), origin=("dropout",), rate=spec.dropout, follows=name
                )
            )
        features = units
    return layers


def lower_to_plan(spec: Spec) -> Plan:
    """The plan of a checked spec (pure arithmetic: nothing is allocated)."""
    height, width, channels = spec.input_shape
    layers: list[PlanLayer] = [InputLayer(name="input_layer", output_shape=spec.input_shape, origin=("input_shape",))]
    block, index, lrn_count = 1, 0, 0
    for position, token in enumerate(spec.layers):
        origin: Origin = ("layers", position)
        if isinstance(token, Conv):
            index += 1
            layers += _conv_layers(spec, (height, width, channels), block, index, token, origin)
            channels = token.filters
        elif isinstance(token, LRN):
            lrn_count += 1
            suffix = "" if lrn_count == 1 else str(lrn_count)
            lrn = spec.lrn
            layers.append(
                LocalResponseNormalization(
                    name=f"block{block}_lrn{suffix}",
                    output_shape=(height, width, channels),
                    origin=origin,
                    size=lrn.size,
                    alpha=lrn.alpha,
                    beta=lrn.beta,
                    k=lrn.k,
                )
            )
        elif isinstance(token, MaxPool):
            size, stride = MaxPooling2D.pool_size, MaxPooling2D.strides  # windows that fit, rounded down
            height, width = (height - size) // stride + 1, (width - size) // stride + 1
            layers.append(
                MaxPooling2D(name=f"block{block}_pool", output_shape=(height, width, channels), origin=origin)
            )
            block, index, lrn_count = block + 1, 0, 0
        else:  # a token the spec reader knows and this lowering does not: never leave it out silently
            raise TypeError(f"lower_to_plan: no plan layer for the token {token!r}")

    if spec.include_top:
        layers += _head(spec, (height, width, channels))
    elif spec.pooling == "avg":
        layers.append(GlobalAveragePooling2D(name="avg_pool", output_shape=(channels,), origin=("pooling",)))
    elif spec.pooling == "max":
        layers.append(GlobalMaxPooling2D(name="max_pool", output_shape=(channels,), origin=("pooling",)))
    return Plan(
        name=spec.name,
        input_shape=spec.input_shape,
        layers=tuple(layers),
        preprocessing=spec.preprocessing,
        classes=spec.classes if spec.include_top else None,
    )
