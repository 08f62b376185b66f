"""What each plan layer becomes in Keras 3: one layer of ``keras.layers`` (or ``keras.Input``), as data.

Names and types are those of ``keras.applications.VGG16/VGG19``: convolutions with their
activation fused, ``fc1``/``fc2``/``predictions`` Dense layers, so Keras weight files load by
name and by order. LRN, which Keras lacks, is vggspec's own ``LocalResponseNormalization``
layer (``vggspec_keras.lrn``; a generated file carries its source). Arguments equal to Keras'
defaults are not given. The layer's name is not in the table: the Keras backend gives the plan's,
the code generator writes it (a literal, or an f-string in a loop).

Keras takes the layout of spatial layers from ``keras.config.image_data_format()`` unless told:
the backend gives the :data:`CHANNELS_LAST` types ``data_format="channels_last"``, as the plan is
channels last whatever the user's configuration says.
"""

from __future__ import annotations

from typing import Any, Callable

from vggspec.errors import VggspecError
from vggspec.frameworks.construct import Construct, construct
from vggspec.planner import layers as plan_layers
from vggspec.planner.layers import PlanLayer

# The plan's activations (vggspec.planner.activations) by Keras' names: the same functions under the same names
# (gelu: Keras' default approximate=False, exact; elu: alpha 1)
ACTIVATIONS: dict[str, str] = {
    "relu": "relu",
    "relu6": "relu6",
    "elu": "elu",
    "selu": "selu",
    "gelu": "gelu",
    "silu": "silu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}
CLASSIFIER_ACTIVATIONS: dict[str, str] = {"softmax": "softmax", "sigmoid": "sigmoid"}
# Keras' own defaults of BatchNormalization: arguments equal to them are not given
BATCH_NORM_DEFAULTS = {"epsilon": 1e-3, "momentum": 0.99}
LRN = "LocalResponseNormalization"  # vggspec's own layer class (vggspec_keras.lrn)
CHANNELS_LAST = frozenset(
    {
        "layers.Conv2D",
        "layers.MaxPooling2D",
        "layers.Flatten",
        "layers.GlobalAveragePooling2D",
        "layers.GlobalMaxPooling2D",
    }
)


def _activation(name: Any, table: dict[str, str], layer: PlanLayer) -> dict[str, str]:
    """``{"activation": Keras' name}``, or nothing for None."""
    if name is None:
        return {}
    if name not in table:
        raise VggspecError(f"layer {layer.name}: expected an activation Keras has, received {name!r}")
    return {"activation": table[name]}


def _conv(layer: plan_layers.Conv2D) -> Construct:
    size = (layer.kernel_size, layer.kernel_size)
    activation = _activation(layer.activation, ACTIVATIONS, layer)
    return construct("layers.Conv2D", layer.filters, size, **activation, padding="same")


def _batch_norm(layer: plan_layers.BatchNormalization) -> Construct:
    values = {"epsilon": layer.epsilon, "momentum": layer.momentum}
    return construct(
        "layers.BatchNormalization",
        **{key: value for key, value in values.items() if value != BATCH_NORM_DEFAULTS[key]},
    )


def _dense(layer: plan_layers.Dense) -> Construct:
    table = CLASSIFIER_ACTIVATIONS if layer.classifier else ACTIVATIONS
    return construct("layers.Dense", layer.units, **_activation(layer.activation, table, layer))


TABLE: dict[type, Callable[[Any], Construct]] = {
    plan_layers.InputLayer: lambda layer: construct("keras.Input", shape=layer.output_shape),
    plan_layers.Conv2D: _conv,
    plan_layers.BatchNormalization: _batch_norm,
    plan_layers.Activation: lambda layer: construct(
        "layers.Activation", _activation(layer.activation, ACTIVATIONS, layer)["activation"]
    ),
    plan_layers.LocalResponseNormalization: lambda layer: construct(
        LRN, size=layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k
    ),
    plan_layers.MaxPooling2D: lambda layer: construct(
        "layers.MaxPooling2D", (layer.pool_size, layer.pool_size), strides=(layer.strides, layer.strides)
    ),
    plan_layers.Flatten: lambda layer: construct("layers.Flatten"),
    plan_layers.Dense: _dense,
    plan_layers.Dropout: lambda layer: construct("layers.Dropout", layer.rate),
    plan_layers.GlobalAveragePooling2D: lambda layer: construct("layers.GlobalAveragePooling2D"),
    plan_layers.GlobalMaxPooling2D: lambda layer: construct("layers.GlobalMaxPooling2D"),
}
"""Plan layer type -> its Keras layer (without its name)."""


def keras_layer(layer: PlanLayer) -> Construct:
    """The Keras layer of one plan layer, without its name; VggspecError for a type or activation with no entry."""
    make = TABLE.get(type(layer))
    if make is None:
        raise VggspecError(
            f"layer {layer.name}: expected a layer type Keras has a layer for, received a {layer.type_name}"
        )
    return make(layer)
