"""The ``numpy`` backend: the plan computed in plain NumPy, the reference every other backend can be held to.

It needs nothing beyond vggspec's own dependencies, so an install without torch, Keras or onnxruntime
can ``predict``, ``features`` and ``verify``. What each layer computes is :data:`vggspec_numpy.layers.LAYERS`;
a model is a :class:`vggspec_numpy.model.NumpyModel`, and the file ``save`` writes is the canonical weight
file, ``.safetensors``, which every command reads as weights. Inference only: no training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from vggspec.errors import BackendError
from vggspec.frameworks.initial_weights import initial_arrays
from vggspec.planner.layers import NON_TRAINABLE_WEIGHTS
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle
from vggspec_numpy.model import NumpyModel

SAVE_SUFFIX = ".safetensors"


class NumpyBackend:
    """vggspec's ``numpy`` backend (see :class:`vggspec.backends.Backend`); models are :class:`NumpyModel` s."""

    name = "numpy"
    requires: Sequence[str] = ("numpy",)  # a dependency of vggspec itself: always there
    install = 'pip install "numpy>=1.24"'
    save_suffix = SAVE_SUFFIX
    initial_seed = 0  # fresh weights are the same on every build, as the onnx backend's

    def build(self, plan: Plan) -> NumpyModel:
        """A model of the plan with Keras' fresh weights (:mod:`vggspec.frameworks.initial_weights`)."""
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for layer, weight, array in initial_arrays(plan, self.initial_seed):
            arrays.setdefault(layer.name, {})[weight] = array
        return NumpyModel(plan, arrays)

    def count_params(self, model: NumpyModel) -> tuple[int, int]:
        """(trainable, non-trainable) from the model's arrays: batch norm's moving mean and variance are
        the non-trainable ones, as the plan says (:data:`vggspec.planner.layers.NON_TRAINABLE_WEIGHTS`)."""
        sizes = [(weight, array.size) for weights in model.arrays.values() for weight, array in weights.items()]
        non_trainable = sum(size for weight, size in sizes if weight in NON_TRAINABLE_WEIGHTS)
        return sum(size for _, size in sizes) - non_trainable, non_trainable

    def get_weights(self, model: NumpyModel, plan: Plan) -> WeightBundle:
        """Copies of the model's arrays, in the plan's order."""
        bundle = WeightBundle(source=f"numpy model {plan.name}")
        for layer in plan.weighted_layers():
            bundle.layers[layer.name] = {weight: model.arrays[layer.name][weight].copy() for weight, _ in layer.weights}
        return bundle

    def set_weights(self, model: NumpyModel, plan: Plan, bundle: WeightBundle) -> None:
        """Copy a checked (possibly partial) bundle into the model; every shape is checked before the first
        array is set, and the layers the bundle lacks keep theirs."""
        copies = {}
        for layer_name, weights in bundle.layers.items():
            for weight, array in weights.items():
                target = model.arrays[layer_name][weight]
                if np.shape(array) != target.shape:
                    raise BackendError(
                        f"layer {layer_name}: expected {weight} of shape {target.shape}, received {np.shape(array)}"
                    )
                copies[layer_name, weight] = np.array(array, dtype=np.float32, copy=True)
        for (layer_name, weight), array in copies.items():
            model.arrays[layer_name][weight] = array

    def predict(self, model: NumpyModel, images: np.ndarray) -> np.ndarray:
        """The last layer's output for NHWC float32 ``images`` (channels last for a map)."""
        last = model.plan.layers[-1].name
        return model.layer_outputs(images, {last: last})[last]

    def activations(self, model: NumpyModel, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every plan layer's output, channels last, batch first, float32."""
        return model.layer_outputs(images, {layer.name: layer.name for layer in plan.layers})

    def extractor(self, model: NumpyModel, plan: Plan, outputs: Mapping[str, str], trainable: bool) -> NumpyModel:
        """A model whose call gives ``{key: output}`` (NHWC maps) for ``outputs`` ({key: plan layer}), on
        ``model``'s arrays. ``trainable`` changes nothing: NumPy computes no gradients."""
        arrays = {layer.name: model.arrays[layer.name] for layer in plan.weighted_layers()}
        return NumpyModel(plan, arrays, dict(outputs))

    def save(self, model: NumpyModel, path: str) -> Optional[str]:
        """Write the model's arrays as a ``.safetensors`` weight file (the canonical layout, which every command
        reads as weights), atomically: nothing is left on failure, and an existing file stays until the new one
        is whole."""
        from vggspec.weights.formats import write_bundle

        if not str(path).endswith(SAVE_SUFFIX):
            suffix = Path(path).suffix or "no extension"
            raise BackendError(f"{path}: expected a file name ending in {SAVE_SUFFIX}, received {suffix!r}")
        write_bundle(path, self.get_weights(model, model.plan), model.plan)
        return None
