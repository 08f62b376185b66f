"""Lower-precision copies of an ONNX model: int8 by onnxruntime's static quantizer, float16 by onnxconverter-common.

int8: ``onnxruntime.quantization.quantize_static`` in the QDQ format (QuantizeLinear/DequantizeLinear pairs
around each quantized operator, which onnxruntime's CPU provider fuses into integer kernels: VNNI's dot
products on a CPU that has them), weights int8 per output channel (symmetric), activations uint8 with
ranges measured by the min-max calibrator on the user's images. A quarter of the bytes: VGG16's 553 MB
become about 139 MB. Conv and Gemm (and the pools between them) run in int8; the Transposes, Flatten and
the softmax stay float32.

float16: every initializer and operator in float16, the input and output kept float32 (``keep_io_types``),
so a caller feeds the same arrays; for runtimes with float16 kernels (GPUs), half the bytes.

Both keep the graph's tensor names (``block1_conv1/nchw``, ``fc1``, ...), so a layer's output can still be
asked for (:mod:`vggspec_onnx.files`). What was done is recorded in the model's ``metadata_props``:
``vggspec.precision``, ``vggspec.calibration_method``, ``vggspec.calibration_images`` and whatever the caller
adds (the images' folder).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import numpy as np
import onnx

from vggspec.errors import BackendError

PRECISIONS = ("int8", "float16")
CALIBRATION_METHOD = "minmax"  # onnxruntime's CalibrationMethod.MinMax: each activation's smallest and largest value
PRECISION_KEY = "vggspec.precision"


def precision_of(proto: onnx.ModelProto) -> str:
    """What the model computes in, from its metadata: ``float32`` when it says nothing (a plain export)."""
    return next((prop.value for prop in proto.metadata_props if prop.key == PRECISION_KEY), "float32")


def set_metadata(proto: onnx.ModelProto, values: Mapping[str, str]) -> None:
    """Set ``values`` in ``metadata_props``, replacing keys already there and keeping the others."""
    kept = {prop.key: prop.value for prop in proto.metadata_props}
    kept.update(values)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, kept)


class _Batches:
    """onnxruntime's CalibrationDataReader over an iterable of NHWC float32 batches; counts the images."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]):
        self.input_name = input_name
        self.batches: Iterator[np.ndarray] = iter(batches)
        self.images = 0

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        batch = next(self.batches, None)
        if batch is None:
            return None
        self.images += len(batch)
        return {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer logs advice through the root logger ("consider pre-processing"): not for our users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(proto: onnx.ModelProto, batches: Iterable[np.ndarray]) -> tuple[onnx.ModelProto, int]:
    """(the int8 QDQ model of the float32 ``proto``, the number of calibration images). The quantizer works on
    files, so the float32 model passes through a temporary folder (removed after)."""
    from onnxruntime.quantization import (  # type: ignore[import-untyped, unused-ignore]
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from vggspec_onnx.model import serialized

    class Reader(_Batches, CalibrationDataReader):  # type: ignore[misc, unused-ignore]
        pass

    reader = Reader(proto.graph.input[0].name, batches)
    with tempfile.TemporaryDirectory(prefix="vggspec-int8-") as folder, _quiet_quantizer():
        source, target = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(serialized(proto))
        quantize_static(
            str(source),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        if reader.images == 0:
            raise BackendError("calibration: expected at least one image to measure the activations on, received none")
        return onnx.load(str(target)), reader.images


def to_float16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model in float16, its input and output float32."""
    try:
        from onnxconverter_common import float16  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise BackendError(
            'precision float16 needs onnxconverter-common, which is not installed: pip install "vggspec[onnx]"'
        ) from None
    import warnings

    with warnings.catch_warnings():  # "the float32 number 1e-9 will be truncated to 1e-7": what float16 is
        warnings.simplefilter("ignore", UserWarning)
        converted: onnx.ModelProto = float16.convert_float_to_float16(proto, keep_io_types=True)
    return converted


def lower_precision(
    proto: onnx.ModelProto, precision: str, calibration: Iterable[np.ndarray], about: Mapping[str, str]
) -> onnx.ModelProto:
    """``proto`` (float32) in ``precision`` (one of PRECISIONS), its metadata saying how it was made."""
    if precision not in PRECISIONS:
        raise BackendError(
            f"precision: expected one of float32, {', '.join(PRECISIONS)}, received {precision!r}", setting="precision"
        )
    if precision == "float16":
        lowered, record = to_float16(proto), {PRECISION_KEY: "float16"}
    else:
        lowered, images = quantize_int8(proto, calibration)
        record = {
            PRECISION_KEY: "int8",
            "vggspec.calibration_method": f"{CALIBRATION_METHOD} (onnxruntime static quantization, QDQ; "
            "weights int8 per channel, activations uint8)",
            "vggspec.calibration_images": str(images),
        }
    set_metadata(lowered, {**dict(about), **record})
    return lowered


def describe(proto: onnx.ModelProto) -> dict[str, Any]:
    """The model's metadata as a dict (what ``vggspec build`` wrote into it)."""
    return {prop.key: prop.value for prop in proto.metadata_props}
