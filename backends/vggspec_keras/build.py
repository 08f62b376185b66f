"""Compile a Plan into a functional ``keras.Model``: each plan layer as its entry of Keras' layer table
(:mod:`vggspec.frameworks.keras_layers`), named as the plan names it.

Every spatial layer is told ``data_format="channels_last"`` explicitly: the plan is channels last
whatever ``keras.config.image_data_format()`` says. Importing this module imports Keras.
"""

from __future__ import annotations

from typing import Any

import keras

from vggspec.errors import BackendError, VggspecError
from vggspec.frameworks.keras_layers import CHANNELS_LAST, keras_layer
from vggspec.planner import layers as plan_layers
from vggspec.planner.lower import Plan
from vggspec_keras import lrn

# Where the names of the table live: keras.Input, keras.layers.X, and vggspec's own layers
NAMESPACES = {"keras": keras, "layers": keras.layers, "": lrn}


def make_layer(layer: plan_layers.PlanLayer, plan: Plan) -> Any:
    """The Keras layer (or ``keras.Input`` tensor) of one plan layer, named as the plan names it, freshly
    initialised."""
    try:
        entry = keras_layer(layer)
    except VggspecError as error:
        raise BackendError(f"plan {plan.name}: {error}") from None
    more = {"data_format": "channels_last"} if entry.type in CHANNELS_LAST else {}
    return entry.make(NAMESPACES, name=layer.name, **more)


def build_keras_model(plan: Plan) -> keras.Model:
    """A functional model named ``plan.name`` with freshly initialised weights (Keras' defaults)."""
    first, rest = plan.layers[0], plan.layers[1:]
    if not isinstance(first, plan_layers.InputLayer):
        raise BackendError(f"plan {plan.name}: expected an input layer first, received a {first.type_name}")
    inputs = make_layer(first, plan)
    outputs = inputs
    for layer in rest:
        outputs = make_layer(layer, plan)(outputs)
    return keras.Model(inputs=inputs, outputs=outputs, name=plan.name)
