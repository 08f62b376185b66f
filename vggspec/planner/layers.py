"""The plan's layer types: one frozen dataclass per kind of layer, the contract every backend compiles.

Each type is named as Keras names its layer class (``Conv2D``, ``MaxPooling2D``, ...), so
that ``model.summary()``'s type column and Keras 3's weight-file group names come from
the type itself. Conventions, for every type:

- ``output_shape`` leaves out the batch axis and is channels last: (height, width,
  channels) for feature maps, (features,) after flatten or global pooling;
- ``weights`` lists (name, shape) of the layer's arrays in the canonical layout
  (:mod:`vggspec.weights.canonical`: conv kernel HWIO, dense kernel (in, out)) in the
  order Keras keeps them; batch norm's moving mean and variance are not trainable;
- ``origin`` is the path of the spec field the layer comes from (for messages only).

Roles are fields, never found by a layer's name: :attr:`Dense.classifier` marks the
predictions layer, :attr:`Dense.reads_flattened` the dense layer that reads the
flattened map (and its (H, W, C) shape, whose Keras flatten order differs from torch's),
:attr:`Dropout.follows` the dense layer a dropout sits after.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Union

Shape = tuple[int, ...]
Origin = tuple[Union[str, int], ...]
WeightShapes = tuple[tuple[str, Shape], ...]

# Batch norm statistics: weights of the layer that training does not fit (Keras counts them as non-trainable).
NON_TRAINABLE_WEIGHTS = ("moving_mean", "moving_variance")


@dataclass(frozen=True, kw_only=True)
class PlanLayer:
    """What every layer has. Subclasses add their typed fields and, where they hold arrays, ``weights``."""

    name: str
    output_shape: Shape
    origin: Origin = dataclasses.field(default=(), compare=False)

    ends_block: ClassVar[bool] = False  # a pool: the layers after it are the next block (block2_conv1, ...)

    @property
    def type_name(self) -> str:
        """The layer's type as ``model.summary()`` shows it (Keras' class name)."""
        return type(self).__name__

    @property
    def weights(self) -> WeightShapes:
        return ()

    @property
    def trainable_params(self) -> int:
        return sum(math.prod(shape) for name, shape in self.weights if name not in NON_TRAINABLE_WEIGHTS)

    @property
    def non_trainable_params(self) -> int:
        return sum(math.prod(shape) for name, shape in self.weights if name in NON_TRAINABLE_WEIGHTS)

    @property
    def params(self) -> int:
        return self.trainable_params + self.non_trainable_params

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one image."""
        return 0

    @property
    def output_size(self) -> int:
        """Values in this layer's output for one image."""
        return math.prod(self.output_shape)

    def config(self) -> dict[str, Any]:
        """The typed fields of the layer's kind (JSON-ready), as ``vggspec summary`` shows them in JSON."""
        common = {"name", "output_shape", "origin"}
        return {
            field.name: _jsonable(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name not in common
        }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True, kw_only=True)
class InputLayer(PlanLayer):
    """The images, (height, width, channels), already preprocessed."""


@dataclass(frozen=True, kw_only=True)
class Conv2D(PlanLayer):
    """A ``kernel_size``² convolution with bias, stride 1, ``kernel_size // 2`` zeros on each side
    ('same' padding: a spec's kernels are odd); ``activation`` fused after it (None when batch norm
    follows: the activation is then a layer of its own)."""

    filters: int
    kernel_size: int
    input_channels: int
    activation: Optional[str]

    @property
    def weights(self) -> WeightShapes:
        k = self.kernel_size
        return (("kernel", (k, k, self.input_channels, self.filters)), ("bias", (self.filters,)))

    @property
    def macs(self) -> int:
        height, width, _ = self.output_shape
        return height * width * self.kernel_size**2 * self.input_channels * self.filters


@dataclass(frozen=True, kw_only=True)
class BatchNormalization(PlanLayer):
    """Batch norm over the channels. ``momentum`` as Keras has it: the weight of the running
    average (torch's momentum, the weight of the new batch, is 1 - momentum)."""

    channels: int
    epsilon: float
    momentum: float

    @property
    def weights(self) -> WeightShapes:
        c = (self.channels,)
        return (("gamma", c), ("beta", c), ("moving_mean", c), ("moving_variance", c))


@dataclass(frozen=True, kw_only=True)
class Activation(PlanLayer):
    """An activation of its own (after batch norm): one of the spec's activations by name."""

    activation: str


@dataclass(frozen=True, kw_only=True)
class LocalResponseNormalization(PlanLayer):
    """As ``torch.nn.LocalResponseNorm(size, alpha, beta, k)``: x / (k + alpha/size · Σ x²)^beta over
    ``size`` neighbouring channels (TensorFlow's depth_radius is (size-1)/2, its alpha is alpha/size)."""

    size: int
    alpha: float
    beta: float
    k: float


@dataclass(frozen=True, kw_only=True)
class MaxPooling2D(PlanLayer):
    """``pool_size``² max pooling with stride ``strides``, the output size rounded down; it ends a block.
    Every VGG pools 2×2 with stride 2: constants of the type, not fields a plan could set otherwise."""

    pool_size: ClassVar[int] = 2
    strides: ClassVar[int] = 2
    ends_block: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class Flatten(PlanLayer):
    """The (H, W, C) map ``input_shape`` as a vector in Keras' order: index = (h·W + w)·C + c."""

    input_shape: tuple[int, int, int]


@dataclass(frozen=True, kw_only=True)
class Dense(PlanLayer):
    """A fully connected layer of ``units``, fed ``input_features`` values.

    ``classifier`` marks the predictions layer (its ``activation`` is the classifier's:
    softmax, sigmoid or None for logits). ``reads_flattened`` is the (H, W, C) map of the
    flatten before it when this layer reads it (fc1): its kernel rows are in Keras'
    H,W,C flatten order, which torch's C,H,W order must reorder.
    """

    units: int
    input_features: int
    activation: Optional[str]
    classifier: bool = False
    reads_flattened: Optional[tuple[int, int, int]] = None

    @property
    def weights(self) -> WeightShapes:
        return (("kernel", (self.input_features, self.units)), ("bias", (self.units,)))

    @property
    def macs(self) -> int:
        return self.input_features * self.units


@dataclass(frozen=True, kw_only=True)
class Dropout(PlanLayer):
    """Dropout of ``rate`` after the dense layer ``follows`` (active only in training)."""

    rate: float
    follows: str


@dataclass(frozen=True, kw_only=True)
class GlobalAveragePooling2D(PlanLayer):
    """The mean of each channel over the map (no top, ``pooling: avg``)."""


@dataclass(frozen=True, kw_only=True)
class GlobalMaxPooling2D(PlanLayer):
    """The maximum of each channel over the map (no top, ``pooling: max``)."""


LAYER_TYPES: tuple[type[PlanLayer], ...] = (
    InputLayer,
    Conv2D,
    BatchNormalization,
    Activation,
    LocalResponseNormalization,
    MaxPooling2D,
    Flatten,
    Dense,
    Dropout,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
)
