"""Move arrays between a Keras model and a WeightBundle.

The canonical layout of :mod:`vggspec.weights.canonical` *is* Keras' layout (conv
kernel HWIO, dense kernel (in, out), fc1 rows in Keras' flatten order), so no
array is transformed here: a plan layer's ``weights`` list gives the names of the
Keras layer's arrays in the order ``layer.get_weights()`` returns them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vggspec.errors import BackendError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle


def _keras_layer(model: Any, name: str) -> Any:
    try:
        return model.get_layer(name)
    except ValueError:
        raise BackendError(
            f"keras model {model.name}: expected a layer named {name!r} (from the plan), received a model without it"
        ) from None


def bundle_from_model(model: Any, plan: Plan) -> WeightBundle:
    """Every weighted plan layer's arrays (copies that do not share memory with the model)."""
    bundle = WeightBundle(source=f"keras model {model.name}")
    for layer in plan.weighted_layers():
        arrays = _keras_layer(model, layer.name).get_weights()
        names = [name for name, _ in layer.weights]
        if len(arrays) != len(names):
            raise BackendError(
                f"keras model {model.name}: layer {layer.name}: expected {len(names)} arrays "
                f"({', '.join(names)}), received {len(arrays)}"
            )
        bundle.layers[layer.name] = {name: np.array(array, copy=True) for name, array in zip(names, arrays)}
    return bundle


def set_bundle(model: Any, plan: Plan, bundle: WeightBundle) -> None:
    """Load the bundle's layers into the model; layers the bundle lacks keep their arrays.

    The bundle has been checked by ``fit_bundle``; everything is gathered before
    the first array is set, so a missing name leaves the model unchanged.
    """
    assignments = []
    for layer in plan.weighted_layers():
        arrays = bundle.layers.get(layer.name)
        if arrays is None:
            continue
        missing = [name for name, _ in layer.weights if name not in arrays]
        if missing:
            raise BackendError(
                f"{bundle.source or 'bundle'}: layer {layer.name}: expected the weights "
                f"{', '.join(name for name, _ in layer.weights)}, received none for "
                f"{', '.join(missing)}"
            )
        assignments.append((_keras_layer(model, layer.name), [arrays[name] for name, _ in layer.weights]))
    for keras_layer, values in assignments:
        keras_layer.set_weights(values)
