"""Compile a Plan into a functional ``keras.Model``, one Keras layer per plan layer.

Layer names and types are those of ``keras.applications.VGG16/VGG19`` (convolutions
with their activation fused, ``fc1``/``fc2``/``predictions`` Dense layers), so Keras
weight files load by name and by order. Every spatial layer is told
``data_format="channels_last"`` explicitly: the plan is channels last whatever
``keras.config.image_data_format()`` says. Importing this module imports Keras.
"""

from __future__ import annotations

from typing import Callable

import keras

from vggspec.errors import BackendError
from vggspec.planner.lower import Plan, PlanLayer
from vggspec_keras.lrn import LocalResponseNormalization

CHANNELS_LAST = "channels_last"


def _conv(layer: PlanLayer) -> keras.layers.Layer:
    size = layer.attrs["kernel_size"]
    strides = layer.attrs["strides"]
    return keras.layers.Conv2D(
        layer.attrs["filters"],
        (size, size),
        strides=(strides, strides),
        padding=layer.attrs["padding"],
        activation=layer.attrs["activation"],
        data_format=CHANNELS_LAST,
        name=layer.name,
    )


def _batch_norm(layer: PlanLayer) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(
        axis=-1, epsilon=layer.attrs["epsilon"], momentum=layer.attrs["momentum"], name=layer.name
    )


def _activation(layer: PlanLayer) -> keras.layers.Layer:
    return keras.layers.Activation(layer.attrs["activation"], name=layer.name)


def _lrn(layer: PlanLayer) -> keras.layers.Layer:
    return LocalResponseNormalization(
        size=layer.attrs["size"],
        alpha=layer.attrs["alpha"],
        beta=layer.attrs["beta"],
        k=layer.attrs["k"],
        name=layer.name,
    )


def _max_pool(layer: PlanLayer) -> keras.layers.Layer:
    size, strides = layer.attrs["pool_size"], layer.attrs["strides"]
    return keras.layers.MaxPooling2D(
        (size, size), strides=(strides, strides), data_format=CHANNELS_LAST, name=layer.name
    )


def _flatten(layer: PlanLayer) -> keras.layers.Layer:
    return keras.layers.Flatten(data_format=CHANNELS_LAST, name=layer.name)


def _dense(layer: PlanLayer) -> keras.layers.Layer:
    return keras.layers.Dense(layer.attrs["units"], activation=layer.attrs["activation"], name=layer.name)


def _dropout(layer: PlanLayer) -> keras.layers.Layer:
    return keras.layers.Dropout(layer.attrs["rate"], name=layer.name)


def _global_avg_pool(layer: PlanLayer) -> keras.layers.Layer:
    return keras.layers.GlobalAveragePooling2D(data_format=CHANNELS_LAST, name=layer.name)


def _global_max_pool(layer: PlanLayer) -> keras.layers.Layer:
    return keras.layers.GlobalMaxPooling2D(data_format=CHANNELS_LAST, name=layer.name)


LAYER_MAKERS: dict[str, Callable[[PlanLayer], keras.layers.Layer]] = {
    "conv": _conv,
    "batch_norm": _batch_norm,
    "activation": _activation,
    "lrn": _lrn,
    "max_pool": _max_pool,
    "flatten": _flatten,
    "dense": _dense,
    "dropout": _dropout,
    "global_avg_pool": _global_avg_pool,
    "global_max_pool": _global_max_pool,
}


def build_keras_model(plan: Plan) -> keras.Model:
    """A functional model named ``plan.name`` with freshly initialised weights (Keras' defaults)."""
    first, rest = plan.layers[0], plan.layers[1:]
    if first.kind != "input":
        raise BackendError(f"plan {plan.name}: expected an input layer first, received {first.kind!r}")
    inputs = keras.Input(shape=first.output_shape, name=first.name)
    outputs = inputs
    for layer in rest:
        maker = LAYER_MAKERS.get(layer.kind)
        if maker is None:
            raise BackendError(
                f"plan {plan.name}: layer {layer.name}: expected one of the kinds "
                f"{', '.join(sorted(LAYER_MAKERS))}, received {layer.kind!r}"
            )
        outputs = maker(layer)(outputs)
    return keras.Model(inputs=inputs, outputs=outputs, name=plan.name)
