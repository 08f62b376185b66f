"""ONNX's layout of the plan's arrays: initializer names, and the arrays to and from the canonical layout.

Every array of a plan layer is one initializer named ``<layer>/<weight>`` (``block1_conv1/kernel``,
``fc1/bias``, ``block1_conv1_bn/moving_mean``), so that a graph viewer shows the plan's names.
Layouts, the only place the ONNX backend transforms arrays:

- conv ``kernel``: the canonical HWIO ``(kh, kw, in, out)`` is ONNX Conv's ``W`` in OIHW
  ``(out, in, kh, kw)``: ``transpose(3, 2, 0, 1)``;
- dense ``kernel``: kept ``(in, out)``, Gemm's ``B`` with ``transB = 0``; the graph flattens the map
  in Keras' H,W,C order (it transposes NCHW back to NHWC before Flatten), so fc1's rows need no reorder;
- biases and batch norm's four vectors ``(C,)``: as they are (Conv's ``B``; BatchNormalization's
  ``scale``, ``B``, ``input_mean``, ``input_var``).

All float32, little-endian (ONNX's raw data).
"""

from __future__ import annotations

import numpy as np

from vggspec.planner.layers import Conv2D, PlanLayer

SEPARATOR = "/"


def initializer_name(layer: str, weight: str) -> str:
    """``block1_conv1/kernel``: the initializer holding ``weight`` of the plan layer ``layer``."""
    return f"{layer}{SEPARATOR}{weight}"


def to_onnx(layer: PlanLayer, weight: str, array: np.ndarray) -> np.ndarray:
    """A canonical array of ``layer`` in ONNX's layout (float32, contiguous)."""
    array = np.asarray(array, dtype=np.float32)
    if isinstance(layer, Conv2D) and weight == "kernel":
        array = array.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    return np.ascontiguousarray(array)


def from_onnx(layer: PlanLayer, weight: str, array: np.ndarray) -> np.ndarray:
    """An initializer of ``layer`` back in the canonical layout (float32, contiguous)."""
    array = np.asarray(array, dtype=np.float32)
    if isinstance(layer, Conv2D) and weight == "kernel":
        array = array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    return np.ascontiguousarray(array)


def onnx_shape(layer: PlanLayer, weight: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the initializer that holds a canonical array of ``shape``."""
    if isinstance(layer, Conv2D) and weight == "kernel":
        height, width, channels_in, channels_out = shape
        return (channels_out, channels_in, height, width)
    return shape
