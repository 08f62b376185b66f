"""Compile a Plan into a functional ``keras.Model``, one Keras layer per plan layer.

Layer names and types are those of ``keras.applications.VGG16/VGG19`` (convolutions
with their activation fused, ``fc1``/``fc2``/``predictions`` Dense layers), so Keras
weight files load by name and by order. Every spatial layer is told
``data_format="channels_last"`` explicitly: the plan is channels last whatever
``keras.config.image_data_format()`` says. Importing this module imports Keras.
"""

from __future__ import annotations

import keras

from vggspec.errors import BackendError
from vggspec.planner import layers as plan_layers
from vggspec.planner.lower import Plan
from vggspec_keras.lrn import LocalResponseNormalization

CHANNELS_LAST = "channels_last"


def keras_layer(layer: plan_layers.PlanLayer, plan: Plan) -> keras.layers.Layer:
    """The Keras layer of one plan layer (named as the plan names it), freshly initialised."""
    name = layer.name
    if isinstance(layer, plan_layers.Conv2D):
        size, strides = layer.kernel_size, layer.strides
        return keras.layers.Conv2D(
            layer.filters,
            (size, size),
            strides=(strides, strides),
            padding=layer.padding,
            activation=layer.activation,
            data_format=CHANNELS_LAST,
            name=name,
        )
    if isinstance(layer, plan_layers.BatchNormalization):
        return keras.layers.BatchNormalization(axis=-1, epsilon=layer.epsilon, momentum=layer.momentum, name=name)
    if isinstance(layer, plan_layers.Activation):
        return keras.layers.Activation(layer.activation, name=name)
    if isinstance(layer, plan_layers.LocalResponseNormalization):
        return LocalResponseNormalization(size=layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k, name=name)
    if isinstance(layer, plan_layers.MaxPooling2D):
        size, strides = layer.pool_size, layer.strides
        return keras.layers.MaxPooling2D((size, size), strides=(strides, strides), data_format=CHANNELS_LAST, name=name)
    if isinstance(layer, plan_layers.Flatten):
        return keras.layers.Flatten(data_format=CHANNELS_LAST, name=name)
    if isinstance(layer, plan_layers.Dense):
        return keras.layers.Dense(layer.units, activation=layer.activation, name=name)
    if isinstance(layer, plan_layers.Dropout):
        return keras.layers.Dropout(layer.rate, name=name)
    if isinstance(layer, plan_layers.GlobalAveragePooling2D):
        return keras.layers.GlobalAveragePooling2D(data_format=CHANNELS_LAST, name=name)
    if isinstance(layer, plan_layers.GlobalMaxPooling2D):
        return keras.layers.GlobalMaxPooling2D(data_format=CHANNELS_LAST, name=name)
    raise BackendError(f"plan {plan.name}: layer {name}: no Keras layer for a {layer.type_name}")


def build_keras_model(plan: Plan) -> keras.Model:
    """A functional model named ``plan.name`` with freshly initialised weights (Keras' defaults)."""
    first, rest = plan.layers[0], plan.layers[1:]
    if not isinstance(first, plan_layers.InputLayer):
        raise BackendError(f"plan {plan.name}: expected an input layer first, received a {first.type_name}")
    inputs = keras.Input(shape=first.output_shape, name=first.name)
    outputs = inputs
    for layer in rest:
        outputs = keras_layer(layer, plan)(outputs)
    return keras.Model(inputs=inputs, outputs=outputs, name=plan.name)
