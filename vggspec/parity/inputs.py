"""Deterministic weights and images for comparing backends when the user gives none."""

from __future__ import annotations

import numpy as np

from vggspec.errors import VggspecError
from vggspec.planner.layers import Dense
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle

SEED_MAX = 2**32 - 1  # numpy.random.seed's range, which every seed of vggspec keeps to


def checked_seed(seed: int, where: str = "seed") -> int:
    """``seed`` when it is an integer 0..SEED_MAX; VggspecError naming ``where`` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= SEED_MAX:
        raise VggspecError(f"{where}: expected an integer from 0 to {SEED_MAX} (2**32 - 1), received {seed!r}")
    return int(seed)


# Typical standard deviation of a preprocessed natural image, per preprocessing mode.
INPUT_STD = {"caffe": 64.0, "torch": 1.0, "tf": 0.5}


def random_bundle(plan: Plan, seed: int = 0) -> WeightBundle:
    """Random weights (canonical layout, float32) that keep every activation of order 1.

    He-normal kernels, the first divided by the input's typical scale (INPUT_STD),
    the classifier's Glorot-like so that the logits are of order 1 and a softmax
    does not saturate (a saturated softmax ties its runners-up and makes top-5
    comparisons meaningless). Biases small; batch norm gamma near 1, small beta and
    moving mean, moving variance in [0.5, 1.5].
    """
    rng = np.random.default_rng(checked_seed(seed))
    bundle = WeightBundle(source=f"random weights (seed {seed})")
    weighted = plan.weighted_layers()
    for layer in weighted:
        arrays = {}
        for name, shape in layer.weights:
            if name == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                gain = 1.0 if isinstance(layer, Dense) and layer.classifier else 2.0
                array = rng.normal(0.0, np.sqrt(gain / fan_in), size=shape)
                if layer is weighted[0]:
                    array /= INPUT_STD.get(plan.preprocessing, 1.0)
            elif name == "gamma":
                array = rng.uniform(0.8, 1.2, size=shape)
            elif name == "moving_variance":
                array = rng.uniform(0.5, 1.5, size=shape)
            else:  # bias, beta, moving_mean
                array = rng.normal(0.0, 0.05, size=shape)
            arrays[name] = array.astype(np.float32)
        bundle.layers[layer.name] = arrays
    return bundle


def synthetic_images(count: int, height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """``count`` smooth, varied images: NHWC float32 in 0..255 (gradients, rings and noise)."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise VggspecError(f"synthetic_images: expected a positive number of images, received {count!r}")
    rng = np.random.default_rng(checked_seed(seed))
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    images = np.empty((count, height, width, channels), dtype=np.float32)
    for n in range(count):
        for c in range(channels):
            fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi)
            ring = np.sin(fx * np.hypot(x - rng.uniform(-0.5, 0.5), y - rng.uniform(-0.5, 0.5)) * np.pi + phase)
            wave = np.cos(fy * (x * rng.uniform(-1, 1) + y) * np.pi)
            noise = rng.normal(0, 0.15, size=(height, width))
            images[n, :, :, c] = 127.5 + 127.5 * np.clip(0.5 * ring + 0.4 * wave + noise, -1, 1)
    return images
