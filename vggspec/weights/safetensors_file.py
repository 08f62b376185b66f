"""``.safetensors`` weight files: the bundle's flat keys, canonical layout.

Keys are ``<layer>/<weight>`` (``block1_conv1/kernel``, ``fc1/bias``,
``block1_conv1_bn/moving_variance``), arrays in the canonical layout (conv HWIO,
dense (in, out), fc1 rows in H,W,C order), so ``.h5 -> .safetensors`` is a plain copy.
The metadata says so (``layout``) and names the file the arrays came from (``source``). A file
whose ``layout`` says otherwise is refused rather than read as canonical: keys ``LAYER/WEIGHT`` with
another layout, or torchvision keys claiming the canonical one. Other metadata (``format``, which
framework saved the file; ``source``) describes the file and is not checked.

A file with torchvision's keys (``features.0.weight``, ``classifier.0.weight``, as the
PyTorch hubs publish) is read too: it is a torch state dict, mapped with the plan (a key of
no module of the plan is named as unused).

The safetensors library checks the header (every array's byte range within the file)
when the file is opened; arrays are then described by that header and read only when
asked. numpy has no bfloat16: a ``BF16`` array is widened to float32 from its raw bytes.

Files are written here, array by array, following the format's specification (8 bytes:
the header's length, little-endian; the JSON header, padded with spaces to a multiple of
8 bytes, giving each array's dtype, shape and byte range in the data that follows; the
arrays' bytes, little-endian, C order): a bundle whose arrays are read from a file is read
one array at a time, each dropped once written, so that writing holds one array, not all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import SEPARATOR, StoredArray, StoredBundle, WeightBundle, group_flat
from vggspec.weights.torchvision import torch_to_stored

LAYOUT = "vggspec canonical (keras): conv kernel HWIO, dense kernel (in, out), fc1 rows in H,W,C order"
WEIGHT_ORDER = {
    name: index for index, name in enumerate(("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"))
}
TORCH_KEY = re.compile(r"^(features|classifier)\.[0-9]+\.[a-z_]+$")
# safetensors' element types -> numpy's names (for messages and the dtype check)
DTYPE_NAMES = {
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "U8": "uint8",
    "U16": "uint16",
    "U32": "uint32",
    "U64": "uint64",
    "BOOL": "bool",
    "C64": "complex64",
}


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn the library's errors for a damaged file (inside the block: its calls only) into one WeightsError."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise WeightsError(f"{path}: expected a safetensors file, received one it cannot read ({reason})") from None


def _bfloat16(path: Path, key: str) -> np.ndarray:
    """A BF16 array widened to float32 from its bytes (the header was checked when the file was opened)."""
    with open(path, "rb") as file:
        header_size = int.from_bytes(file.read(8), "little")
        begin, end = json.loads(file.read(header_size))[key]["data_offsets"]
        file.seek(8 + header_size + begin)
        raw = np.frombuffer(file.read(end - begin), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _stored(file: Any, path: Path, key: str) -> StoredArray:
    with _reading(path):
        view = file.get_slice(key)
        shape, dtype = tuple(int(n) for n in view.get_shape()), str(view.get_dtype())

    def load() -> np.ndarray:
        with _reading(path):
            if dtype == "BF16":
                return _bfloat16(path, key).reshape(shape)
            return file.get_tensor(key)

    return StoredArray(shape, DTYPE_NAMES.get(dtype, dtype.lower()), f"key {key!r}", load)


@contextlib.contextmanager
def stored_safetensors(path: Union[str, Path], plan: Optional[Plan] = None) -> Iterator[StoredBundle]:
    """Describe a ``.safetensors`` file (StoredArrays, readable inside the block); layers in the
    plan's order when a plan is given."""
    from safetensors import safe_open

    path = Path(path)
    with _reading(path):
        opened = safe_open(str(path), framework="np")
    with opened as file:
        with _reading(path):
            keys = list(file.keys())
            metadata = file.metadata() or {}
        arrays = {key: _stored(file, path, key) for key in keys}
        yield _bundle(path, arrays, plan, metadata.get("layout"))


def _check_layout(path: Path, layout: Optional[str], torch_keys: bool) -> None:
    """Refuse a metadata ``layout`` that contradicts how the keys are read (see the module); None passes."""
    if layout is None or (layout == LAYOUT) != torch_keys:
        return
    shown = repr(layout[:100]) + ("..." if len(layout) > 100 else "")
    if torch_keys:
        raise WeightsError(
            f"{path}: expected torchvision's layout for its keys features.N and classifier.N, received "
            f"metadata layout {shown} (vggspec's canonical one, which it writes under keys LAYER/WEIGHT)"
        )
    raise WeightsError(f"{path}: expected metadata layout {LAYOUT!r} for keys LAYER/WEIGHT, received {shown}")


def _bundle(path: Path, arrays: dict[str, StoredArray], plan: Optional[Plan], layout: Optional[str]) -> StoredBundle:
    # torchvision's keys: some features.N/classifier.N, none LAYER/WEIGHT (another key is an extra, named)
    torch_keys = any(TORCH_KEY.match(key) for key in arrays) and not any(SEPARATOR in key for key in arrays)
    _check_layout(path, layout, torch_keys)
    if torch_keys:
        if plan is None:
            raise WeightsError(
                f"{path}: expected a spec to map torchvision keys (features.N, classifier.N) to layers, received none"
            )
        return torch_to_stored(plan, arrays, source=str(path))
    for key in arrays:
        layer, _, name = key.rpartition(SEPARATOR)
        if not layer or not name:
            raise WeightsError(f"{path}: expected keys LAYER/WEIGHT (e.g. block1_conv1/kernel), received {key[:100]!r}")
    # the file keeps no order: layers in the plan's order, weights in Keras' order
    layer_order = {layer.name: index for index, layer in enumerate(plan.layers)} if plan is not None else {}
    # a canonical key says no more than "layer L: W" does: no (key ...) in messages
    layers = group_flat({key: dataclasses.replace(array, stored="") for key, array in arrays.items()})
    return StoredBundle(
        {
            layer: dict(sorted(weights.items(), key=lambda item: _position(WEIGHT_ORDER, item[0])))
            for layer, weights in sorted(layers.items(), key=lambda item: _position(layer_order, item[0]))
        },
        source=str(path),
    )


def _position(order: dict[str, int], name: str) -> tuple[int, str]:
    return order.get(name, len(order)), name


# numpy's names -> safetensors' element types, for writing (numpy has no bfloat16)
WRITTEN_DTYPES = {name: code for code, name in DTYPE_NAMES.items() if name != "bfloat16"}
HEADER_ALIGNMENT = 8  # the data starts on a multiple of 8 bytes, as the safetensors library writes it


def _header(arrays: dict[str, StoredArray], metadata: dict[str, str], path: Path) -> bytes:
    """The length-prefixed, space-padded JSON header of ``arrays`` (in order, back to back)."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for key, array in arrays.items():
        if array.dtype not in WRITTEN_DTYPES:
            raise WeightsError(f"{path}: key {key!r}: expected a numeric array to write, received {array.dtype}")
        size = math.prod(array.shape) * np.dtype(array.dtype).itemsize
        header[key] = {
            "dtype": WRITTEN_DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % HEADER_ALIGNMENT)
    return len(text).to_bytes(8, "little") + text


def write_safetensors(
    path: Union[str, Path],
    bundle: Union[WeightBundle, StoredBundle],
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items,
    meta_json: Optional[str] = None,
) -> None:
    """Write ``bundle`` with keys ``<layer>/<weight>``; metadata: format, layout, source and, when given,
    ``meta_json`` under ``vggspec`` (:mod:`vggspec.weights.meta`).

    Each array is written as its StoredArray's shape and dtype declare (read, converted to that dtype if
    it is not, written, dropped): a StoredBundle of a file is never held whole."""
    stored = bundle.described() if isinstance(bundle, WeightBundle) else bundle
    arrays = {
        f"{layer}{SEPARATOR}{name}": array
        for layer, weights in stored.layers.items()
        for name, array in weights.items()
    }
    metadata = {"format": "np", "layout": LAYOUT, "source": Path(stored.source).name}
    if meta_json is not None:
        metadata["vggspec"] = meta_json
    with open(path, "wb") as file:
        file.write(_header(arrays, metadata, Path(path)))
        for layer in progress(list(stored.layers)):
            for name, array in stored.layers[layer].items():
                data = np.ascontiguousarray(array.read(), dtype=np.dtype(array.dtype).newbyteorder("<"))
                if data.shape != tuple(array.shape):
                    raise WeightsError(
                        f"{path}: layer {layer}: expected {name} of shape {tuple(array.shape)} to write, "
                        f"received {data.shape}"
                    )
                file.write(data.data)
                del data
