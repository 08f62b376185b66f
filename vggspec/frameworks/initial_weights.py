"""Fresh weights for a backend whose framework has no initialisation of its own (onnx, numpy).

Keras' defaults for VGG's layers, computed in NumPy: Glorot-uniform kernels, zero biases, batch norm
gamma 1, beta 0, moving mean 0 and moving variance 1. Arrays in the canonical layout, float32.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from vggspec.planner.layers import Conv2D, Dense, PlanLayer
from vggspec.planner.lower import Plan


def initial_arrays(plan: Plan, seed: int) -> Iterator[tuple[PlanLayer, str, np.ndarray]]:
    """(layer, weight name, array) for every array of the plan, in order, one made at a time (a generator: a
    caller that stores each as it comes never holds two copies)."""
    rng = np.random.default_rng(seed)
    starts = {"gamma": 1.0, "moving_variance": 1.0}
    for layer in plan.weighted_layers():
        for weight, shape in layer.weights:
            if weight == "kernel" and isinstance(layer, (Conv2D, Dense)):
                receptive = math.prod(shape[:-2])  # kh·kw for a conv, 1 for a dense layer
                limit = math.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
                array = rng.random(shape, dtype=np.float32)
                array *= np.float32(2 * limit)
                array -= np.float32(limit)
            else:
                array = np.full(shape, starts.get(weight, 0.0), dtype=np.float32)
            yield layer, weight, array
