"""The NumPy backend's native model: a plan, its arrays, and the layers whose outputs a call gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from vggspec.errors import BackendError
from vggspec.planner.lower import Plan
from vggspec_numpy.layers import LAYERS


@dataclass
class NumpyModel:
    """``plan`` with ``arrays[layer][weight]`` (canonical layout, float32, the model's own copies).

    Calling it runs the plan on NHWC float32 images (batch first, preprocessed) and gives
    ``{key: output}`` for ``outputs`` (``{key: plan layer}``; the built model's is its last layer),
    every output as the plan lays it out: channels last, batch first, float32.
    """

    plan: Plan
    arrays: dict[str, dict[str, np.ndarray]]
    outputs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.outputs:
            last = self.plan.layers[-1].name
            self.outputs = {last: last}

    def layer_outputs(self, images: np.ndarray, keep: Mapping[str, str]) -> dict[str, np.ndarray]:
        """The outputs of the plan layers named in ``keep``'s values, by layer name; the layers after the
        deepest of them are not run, and each other output is dropped once the next layer has read it."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        expected = self.plan.input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise BackendError(
                f"images for numpy model {self.plan.name}: expected an array of shape "
                f"(N, {', '.join(map(str, expected))}), received {tuple(np.shape(images))}"
            )
        wanted, kept = set(keep.values()), {}
        for layer in self.plan.layers:
            compute = LAYERS.get(type(layer))
            if compute is None:  # a layer type the plan gained and the table lacks: never skipped silently
                raise BackendError(f"layer {layer.name}: the numpy backend has no function for a {layer.type_name}")
            x = compute(layer, x, self.arrays.get(layer.name, {}))
            if layer.name in wanted:
                kept[layer.name] = x
                if len(kept) == len(wanted):
                    break
        return kept

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``{key: output}`` for ``outputs``."""
        kept = self.layer_outputs(images, self.outputs)
        return {key: kept[layer] for key, layer in self.outputs.items()}
