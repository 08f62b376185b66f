"""What each plan layer computes, in plain NumPy: the README's layer table, executable.

:data:`LAYERS` maps every plan layer type to a function ``(layer, x, weights) -> y``: ``x`` is the
output of the layer before it (NHWC float32 for a map, (N, features) after flatten or global
pooling), ``weights`` the layer's arrays by name in the canonical layout (conv kernel HWIO,
dense kernel (in, out)), ``y`` the layer's output in the same conventions, float32. Written for
clarity first: every layer is a few array operations, the convolution one matrix product.

Convolution (``im2col``): :func:`numpy.lib.stride_tricks.sliding_window_view` views each output
pixel's ``k × k × C`` neighbourhood of the zero-padded input without copying, and one
``tensordot`` with the kernel multiplies every neighbourhood by it (NumPy copies the windows into
one matrix of ``N·H·W`` rows and ``k·k·C`` columns, then one BLAS product). The rows are taken a
band of output rows at a time (:data:`WINDOWS_BYTES`), so the copied windows stay small whatever
the batch: VGG16's first convolutions would otherwise copy 115 MB per 224×224 image.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vggspec.planner import layers as plan_layers

Weights = Mapping[str, np.ndarray]
WINDOWS_BYTES = 32 << 20  # the most bytes of copied windows one product of a convolution takes
# float32 of torch's and Keras' SELU constants
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
# erfc's Chebyshev fit (Numerical Recipes' erfcc): relative error below 1.2e-7 everywhere, float32's precision
ERFC_COEFFICIENTS = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, element-wise (NumPy has none): 1 - erfc(|x|), odd; computed in float64, returned
    in the dtype of ``x`` (absolute error below 1e-7)."""
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    polynomial = np.zeros_like(t)
    for coefficient in reversed(ERFC_COEFFICIENTS):  # Horner's rule: ten terms, whatever the size of x
        polynomial = polynomial * t + coefficient
    erfc = t * np.exp(-z * z + polynomial)
    return np.copysign(1.0 - erfc, x).astype(x.dtype)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), as exp(-log(1 + exp(-x))): no overflow for a large negative x."""
    return np.exp(-np.logaddexp(0.0, -x))


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x_i) / Σ_j exp(x_j) over the last axis (the classes), the largest subtracted first."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# The plan's activations (vggspec.planner.activations) and the classifier's, each as that module says it
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: x * (1 + erf(x / math.sqrt(2))) / 2,
    "silu": lambda x: x * sigmoid(x),
    "tanh": np.tanh,
    "sigmoid": sigmoid,
}
CLASSIFIER_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"softmax": softmax, "sigmoid": sigmoid}


def activate(x: np.ndarray, name: Optional[str], table: Mapping[str, Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """``table[name](x)`` as float32; ``x`` itself for None (logits, or a convolution before its batch norm)."""
    return x if name is None else np.asarray(table[name](x), dtype=np.float32)


def conv2d(layer: plan_layers.Conv2D, x: np.ndarray, weights: Weights) -> np.ndarray:
    """Cross-correlation, stride 1, ``kernel_size // 2`` zeros on each side, plus bias, then the activation."""
    k, pad = layer.kernel_size, layer.kernel_size // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = sliding_window_view(padded, (k, k), axis=(1, 2))  # (N, H, W, C, kh, kw): a view, nothing copied
    kernel = weights["kernel"]  # (kh, kw, C, filters)
    count, height, width, channels = x.shape
    y = np.empty((count, height, width, layer.filters), dtype=np.float32)
    rows = max(1, WINDOWS_BYTES // (4 * max(count, 1) * width * channels * k * k))  # output rows per product
    for top in range(0, height, rows):  # bands of rows, not pixels: one product each
        # window axes (kh, kw, C) against the kernel's (kh, kw, C): each copied row reads C contiguous values
        y[:, top : top + rows] = np.tensordot(windows[:, top : top + rows], kernel, axes=([4, 5, 3], [0, 1, 2]))
    y += weights["bias"]
    return activate(y, layer.activation, ACTIVATIONS)


def batch_norm(layer: plan_layers.BatchNormalization, x: np.ndarray, weights: Weights) -> np.ndarray:
    """(x - moving_mean) / √(moving_variance + epsilon) · gamma + beta: the inference form."""
    scale = weights["gamma"] / np.sqrt(weights["moving_variance"] + np.float32(layer.epsilon))
    return (x - weights["moving_mean"]) * scale + weights["beta"]


def local_response_norm(layer: plan_layers.LocalResponseNormalization, x: np.ndarray, weights: Weights) -> np.ndarray:
    """x / (k + alpha/size · Σ x²)^beta, the sum over channels c - size//2 ... c + (size-1)//2 (zeros beyond)."""
    squares = np.pad(x * x, ((0, 0), (0, 0), (0, 0), (layer.size // 2, (layer.size - 1) // 2)))
    sums = sliding_window_view(squares, layer.size, axis=3).sum(axis=-1)  # (N, H, W, C)
    return x / (np.float32(layer.k) + np.float32(layer.alpha / layer.size) * sums) ** np.float32(layer.beta)


def max_pool(layer: plan_layers.MaxPooling2D, x: np.ndarray, weights: Weights) -> np.ndarray:
    """The maximum over ``pool_size``² windows ``strides`` apart; a last row or column that fills no window
    is dropped (the output size rounded down)."""
    size, step = layer.pool_size, layer.strides
    windows = sliding_window_view(x, (size, size), axis=(1, 2))[:, ::step, ::step]  # (N, H', W', C, size, size)
    return windows.max(axis=(4, 5))


def dense(layer: plan_layers.Dense, x: np.ndarray, weights: Weights) -> np.ndarray:
    """x @ kernel + bias, then the activation (the classifier's: softmax, sigmoid or none)."""
    table = CLASSIFIER_ACTIVATIONS if layer.classifier else ACTIVATIONS
    return activate(x @ weights["kernel"] + weights["bias"], layer.activation, table)


# Plan layer type -> what it computes from the previous layer's output and its own arrays
LAYERS: dict[type, Callable[..., np.ndarray]] = {
    plan_layers.InputLayer: lambda layer, x, weights: x,
    plan_layers.Conv2D: conv2d,
    plan_layers.BatchNormalization: batch_norm,
    plan_layers.Activation: lambda layer, x, weights: activate(x, layer.activation, ACTIVATIONS),
    plan_layers.LocalResponseNormalization: local_response_norm,
    plan_layers.MaxPooling2D: max_pool,
    plan_layers.Flatten: lambda layer, x, weights: x.reshape(len(x), -1),  # NHWC in memory: H,W,C order
    plan_layers.Dense: dense,
    plan_layers.Dropout: lambda layer, x, weights: x,  # the identity at inference
    plan_layers.GlobalAveragePooling2D: lambda layer, x, weights: x.mean(axis=(1, 2)),
    plan_layers.GlobalMaxPooling2D: lambda layer, x, weights: x.max(axis=(1, 2)),
}
