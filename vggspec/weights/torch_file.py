"""PyTorch ``.pt`` / ``.pth`` files: a torchvision-style state dict saved with ``torch.save``.

Keys and layout are torchvision's VGG (``features.0.weight`` OIHW, ``classifier.0.weight``
(out, in) with fc1's columns in C,H,W order); :mod:`vggspec.weights.torchvision` maps them to
and from the canonical layout with the plan, after ``fit_bundle`` has checked each shape
and dtype. torch is imported only here, inside the functions (without it: the install hint the
backends give), and files are read with ``weights_only=True`` (no code runs from a file; a file
that needs more is named for what it holds, :mod:`.torch_pickle`). A zip-format file's members are first
held to the sizes the spec's parameters can need (declared sizes, nothing decompressed).

Writing streams, so that converting VGG16's 553 MB holds about one array (fc1's 411 MB)
rather than the source and its torch copy (2.45 times the file). ``torch.save`` needs every
tensor when it starts, so the torch-layout arrays are first written, one source array at a
time (read, permuted in blocks of rows, dropped), to an unnamed staging file beside the
destination; the state dict's tensors are views of a private memory map of that file, whose
pages are read back only while ``torch.save`` writes each record, and handed back to the
kernel (``MADV_DONTNEED``; the data stays in the file) after each write it makes.
"""

from __future__ import annotations

import collections
import functools
import math
import mmap
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable, Iterable, Iterator, Optional, Union, cast

import numpy as np

from vggspec.backends import install_hint, not_installed
from vggspec.errors import WeightsError
from vggspec.frameworks.torch_modules import module_slots
from vggspec.planner.layers import BatchNormalization
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import StoredArray, StoredBundle, WeightBundle, archive_bytes_limit
from vggspec.weights.meta import KEY
from vggspec.weights.torch_pickle import WHAT, load_error
from vggspec.weights.torchvision import Reorder, reorder, torch_key, torch_to_stored
from vggspec.weights.zip_archive import check_total_size, declared_sizes

# Containers that training scripts wrap a state dict in.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def torch_module(path: Union[str, Path], doing: str = "reading") -> Any:
    """The torch module, for ``doing`` ("reading", "writing") the PyTorch file ``path``; without it,
    WeightsError with the install hint the backends give for a missing framework."""
    try:
        import torch
    except ModuleNotFoundError as error:
        if error.name != "torch":  # torch is there, and broken: its own error says more
            raise
        who = f"{path}: {doing} a PyTorch state dict"
        raise WeightsError(not_installed(who, ["torch"], install_hint("torch"))) from None
    return torch


def _is_state_dict(value: Any) -> bool:
    import torch

    return isinstance(value, dict) and bool(value) and all(isinstance(item, torch.Tensor) for item in value.values())


def _unwrapped(loaded: Any) -> tuple[Any, tuple[str, ...]]:
    """(the state dict a training script's checkpoint wraps, or ``loaded`` itself; the checkpoint's other
    state dicts, e.g. timm's ``state_dict_ema``, named as not read). Its other entries (epoch, optimizer,
    arguments) are the run's, not the network's, and are not named."""
    key = next((key for key in WRAPPER_KEYS if isinstance(loaded, dict) and isinstance(loaded.get(key), dict)), None)
    if key is None:
        return loaded, ()
    others = tuple(
        f"{other} (a second state dict, {len(value)} tensors)"
        for other, value in loaded.items()
        if other != key and isinstance(other, str) and _is_state_dict(value)
    )
    return loaded[key], others


def _state_dict(loaded: Any, path: Path) -> dict[str, Any]:
    import torch

    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise WeightsError(f"{path}: expected a state dict (names -> tensors), received {type(loaded).__name__}")
    for key, tensor in loaded.items():
        if not isinstance(key, str):
            raise WeightsError(f"{path}: expected a state dict with string keys, received the key {key!r}")
        if tensor.layout != torch.strided or tensor.device.type != "cpu":
            raise WeightsError(
                f"{path}: key {key!r}: expected a dense CPU tensor, received a "
                f"{str(tensor.layout).removeprefix('torch.')} tensor on {tensor.device.type}"
            )
    # A model saved from nn.DataParallel has every key under "module."
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def _stored(path: Path, key: str, tensor: Any) -> StoredArray:
    """A tensor described by its shape and dtype; read (half types widened to float32) only when asked."""
    import torch

    def load() -> np.ndarray:
        widened = tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
        try:
            return widened.detach().numpy()
        except (RuntimeError, TypeError) as error:
            reason = " ".join(str(error).split())[:200]
            raise WeightsError(
                f"{path}: key {key!r}: expected a tensor numpy can hold, received one it cannot ({reason})"
            ) from None

    return StoredArray(tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."), f"key {key!r}", load)


def load_torch_mapped(path: Path) -> Any:
    """What ``torch.save`` wrote to ``path``, loaded weights-only and, for a zip-format file, memory-mapped (an
    array is read when used: those a cut model does not need never are); a file torch refuses is one
    WeightsError saying why."""
    torch = torch_module(path)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 126": the error says enough
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        raise load_error(path, error) from None


def stored_torch(path: Union[str, Path], plan: Plan) -> StoredBundle:
    """Describe a torchvision-style state dict, mapped to the canonical layout with ``plan`` (StoredArrays);
    its keys of no weight of the plan, and a checkpoint's other state dicts, are the bundle's ``extra``."""
    path = Path(path)
    if zipfile.is_zipfile(path):  # torch.save's format since torch 1.6
        check_total_size(path, declared_sizes(path, WHAT), archive_bytes_limit(plan.total_params), WHAT)
    loaded, others = _unwrapped(load_torch_mapped(path))
    state = {key: _stored(path, key, tensor) for key, tensor in _state_dict(loaded, path).items()}
    bundle = torch_to_stored(plan, state, source=str(path))
    bundle.extra += others
    return bundle


BLOCK_BYTES = 16 << 20  # the torch-layout rows permuted and written at a time


@functools.cache
def _libc() -> Any:
    """The C library (a ``ctypes.CDLL``), looked up once (``find_library`` runs ``ldconfig`` in a subprocess);
    None when absent."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _return_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc's ``malloc_trim``; elsewhere nothing): arrays of a
    few MB freed one after the other otherwise stay in the process' resident memory (about 75 MB for VGG16's
    convolutions), which ``torch.save`` then holds beside fc1's 411 MB."""
    trim = getattr(_libc(), "malloc_trim", None)  # not glibc: none
    if trim is not None:
        trim(0)


def _torch_rows(array: np.ndarray, change: Reorder) -> Iterator[np.ndarray]:
    """``change.to_torch(array)`` in blocks of its rows (each (n, ...) C-contiguous, in one reused buffer).

    The same view and permutation as :meth:`Reorder.to_torch`, copied slab by slab: for each index of the
    moved array's trailing axes, a 2-D transpose of the two leading ones (fc1: (C, O) -> (O, C) for each of
    the 7x7 positions), which stays in the cache where numpy's one strided copy of fc1's 411 MB does not."""
    moved = array.reshape(change.view).transpose(change.axes)
    rows = moved.shape[0]
    step = max(1, min(rows, BLOCK_BYTES // max(1, array.nbytes // max(1, rows))))
    block = np.empty((step, *moved.shape[1:]), dtype=array.dtype)
    slabs = list(np.ndindex(*moved.shape[2:]))
    for start in range(0, rows, step):
        count = min(step, rows - start)
        for index in slabs:
            block[(slice(0, count), slice(None)) + index] = moved[(slice(start, start + count), slice(None)) + index]
        yield block[:count]


class _PagingOut:
    """The file ``torch.save`` writes to: after each write (a zip record: the data of one tensor, in one
    write) the staging map's pages go back to the kernel, so torch.save holds one tensor's pages at a time."""

    def __init__(self, file: BinaryIO, mapped: mmap.mmap):
        self.file = file
        self.mapped = mapped

    def write(self, data: Any) -> int:
        written = self.file.write(data)
        if len(memoryview(data)) >= mmap.PAGESIZE and hasattr(mmap, "MADV_DONTNEED"):
            self.mapped.madvise(mmap.MADV_DONTNEED)
        return written if written is not None else len(memoryview(data))

    def flush(self) -> None:
        self.file.flush()


def _state_dict_with_meta(state: dict[str, Any], meta_json: Optional[str]) -> Any:
    """``state`` as the OrderedDict ``nn.Module.state_dict()`` returns, ``meta_json`` as its
    ``_metadata["vggspec"]`` (torch's per-module metadata: no module is named so, a strict load ignores it)."""
    ordered: Any = collections.OrderedDict(state)
    if meta_json is not None:
        ordered._metadata = {KEY: meta_json}
    return ordered


def _save_staged(path: Path, mapped: mmap.mmap, entries: dict[str, Any], meta_json: Optional[str]) -> None:
    """``torch.save`` the state dict whose (shape, offset) entries are views of ``mapped`` (float32), the others
    tensors as given; the views are gone when this returns (the map can then close)."""
    import torch

    state = {
        key: torch.frombuffer(mapped, dtype=torch.float32, count=math.prod(entry[0]), offset=entry[1]).view(entry[0])
        if isinstance(entry, tuple)
        else entry
        for key, entry in entries.items()
    }
    with open(path, "wb") as file:
        torch.save(_state_dict_with_meta(state, meta_json), cast(IO[bytes], _PagingOut(file, mapped)))


def write_torch(
    path: Union[str, Path],
    bundle: Union[WeightBundle, StoredBundle],
    plan: Plan,
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items,
    meta_json: Optional[str] = None,
) -> None:
    """Write ``bundle`` (checked against ``plan``: canonical layout, float32) as a torchvision-style state dict
    of CPU tensors, keys in torchvision's order (see the module: array by array, through a staging file), with
    ``meta_json`` (:mod:`vggspec.weights.meta`) as its ``_metadata["vggspec"]``."""
    import torch

    stored = bundle.described() if isinstance(bundle, WeightBundle) else bundle
    slots = module_slots(plan)
    layers = {layer.name: layer for layer in plan.weighted_layers()}
    # key -> (torch shape, byte offset in the staging file), or a tensor (batch norm's num_batches_tracked: 0)
    entries: dict[str, Any] = {}
    path = Path(path)
    with tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".staging") as staging:
        offset = 0
        for name in progress(list(stored.layers)):
            layer = layers[name]
            for weight, array in stored.layers[name].items():
                data = np.asarray(array.read(), dtype=np.float32)
                change = reorder(layer, weight)
                shape = change.torch_shape if change is not None else tuple(data.shape)
                for rows in _torch_rows(data, change) if change is not None else [np.ascontiguousarray(data)]:
                    staging.write(rows.data)
                del data
                _return_freed_memory()
                entries[torch_key(slots[name], layer, weight)] = (tuple(shape), offset)
                offset += 4 * math.prod(shape)
            if isinstance(layer, BatchNormalization):
                entries[f"{slots[name].path}.num_batches_tracked"] = torch.zeros((), dtype=torch.int64)
        staging.flush()
        if offset == 0:  # nothing to map
            torch.save(_state_dict_with_meta(entries, meta_json), path)
            return
        with mmap.mmap(staging.fileno(), offset, access=mmap.ACCESS_COPY) as mapped:
            _save_staged(path, mapped, entries, meta_json)
