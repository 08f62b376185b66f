"""Read and write any supported weight file, choosing the format by its name and content.

- ``*.h5``, ``*.hdf5``: Keras 1 or Keras 2 HDF5, also a full-model file's ``model_weights/``
  (:mod:`.keras_h5`);
- ``*.weights.h5``: Keras 3's ``save_weights`` (:mod:`.keras3_h5`);
- ``*.keras``: a Keras 3 model archive, its ``model.weights.h5`` (:mod:`.keras_archive`; read only);
- ``*.safetensors``: the bundle's keys, canonical layout (:mod:`.safetensors_file`);
- ``*.pt``, ``*.pth``: a torchvision-style state dict (:mod:`.torch_file`).

An existing HDF5 file is read as what its own attributes say it is (``layer_names``
with or without ``keras_version``, ``model_weights/``, ``layers/``), whatever its
name. Reading goes through :func:`open_bundle`: the file's arrays are described by
their metadata and checked against the plan (``fit_bundle``) before any data is read.
Every write goes through :func:`vggspec.fileio.atomic_path`: a failed write
leaves nothing behind and an existing destination untouched. A file's arrays can be
written without reading them all first (:func:`checked_stored`, then :func:`write_bundle`
with the StoredBundle): ``.safetensors`` and ``.pt`` are then written array by array, each
read when it is written and dropped after it (``vggspec convert``: about one array in
memory rather than the whole file twice).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Union

from vggspec.errors import WeightsError
from vggspec.fileio import atomic_path
from vggspec.planner.lower import Plan
from vggspec.regular_files import not_regular
from vggspec.weights.bundle import StoredArray, StoredBundle, WeightBundle
from vggspec.weights.fit import FittedBundle, check_bundle, fit_bundle, read_finite, read_stored
from vggspec.weights.hdf5 import group, has_attribute, open_h5
from vggspec.weights.keras3_h5 import stored_keras3_h5, write_keras3_h5
from vggspec.weights.keras_archive import stored_keras_archive
from vggspec.weights.keras_h5 import legacy_root, stored_keras_h5, write_keras_h5
from vggspec.weights.meta import WeightsMeta
from vggspec.weights.safetensors_file import stored_safetensors, write_safetensors
from vggspec.weights.torch_file import stored_torch, torch_module, write_torch

KERAS1 = "keras1-h5"
KERAS2 = "keras2-h5"
KERAS_MODEL = "keras-model-h5"
KERAS3 = "keras3-weights-h5"
KERAS_ARCHIVE = "keras-archive"
SAFETENSORS = "safetensors"
TORCH = "torch"

DESCRIPTIONS = {
    KERAS1: "Keras 1 HDF5 weights",
    KERAS2: "Keras 2 HDF5 weights",
    KERAS_MODEL: "Keras HDF5 model (model_weights/)",
    KERAS3: "Keras 3 .weights.h5",
    KERAS_ARCHIVE: "Keras 3 model archive (.keras)",
    SAFETENSORS: "safetensors",
    TORCH: "PyTorch state dict",
}
SUPPORTED_NAMES = (
    ".h5 or .hdf5 (Keras 1/2), .weights.h5 (Keras 3), .keras (Keras 3 model, read only), "
    ".safetensors, .pt or .pth (PyTorch)"
)
LEGACY_H5 = "keras-h5"  # a legacy .h5 name, before its content says Keras 1, 2 or a model file
NEEDS_PLAN = (KERAS3, KERAS_ARCHIVE, TORCH)  # arrays are matched to layers by the plan
STREAMED = (SAFETENSORS, TORCH)  # written array by array from a StoredBundle

Progress = Callable[[Iterable], Iterable]


def format_for_name(path: Union[str, Path]) -> str:
    """The format a file name asks for: KERAS3, KERAS_ARCHIVE, LEGACY_H5, SAFETENSORS or TORCH."""
    name = Path(path).name.lower()
    if name.endswith(".weights.h5"):
        return KERAS3
    if name.endswith((".h5", ".hdf5")):
        return LEGACY_H5
    if name.endswith(".keras"):
        return KERAS_ARCHIVE
    if name.endswith(".safetensors"):
        return SAFETENSORS
    if name.endswith((".pt", ".pth")):
        return TORCH
    raise WeightsError(f"{path}: expected a weight file named {SUPPORTED_NAMES}, received {Path(path).name!r}")


def _sniff_h5(path: Path) -> str:
    with open_h5(path) as file:
        found = legacy_root(file, str(path))
        if found is not None and found[0] is not file:
            return KERAS_MODEL
        if found is not None:
            return KERAS2 if has_attribute(file, "keras_version", str(path)) else KERAS1
        if group(file, "layers", str(path)) is not None:
            return KERAS3
    raise WeightsError(
        f"{path}: expected Keras weights (the attribute layer_names, a model_weights/ group or a "
        "Keras 3 layers/ group), received an HDF5 file with none of them"
    )


def detect_format(path: Union[str, Path]) -> str:
    """The format of an existing weight file: one of the keys of DESCRIPTIONS.

    HDF5 files are told apart by their own attributes: ``layer_names`` without
    ``keras_version`` is Keras 1, with it Keras 2 (also what Keras 3's legacy writer
    makes), ``model_weights/`` a full-model file, ``layers/`` Keras 3.
    """
    path = Path(path)
    kind = format_for_name(path)
    what = not_regular(path)  # a FIFO would hang the reader, a folder is no file
    if what is not None:
        raise WeightsError(f"{path}: expected a weight file, received {what}")
    return _sniff_h5(path) if kind in (LEGACY_H5, KERAS3) else kind


@contextlib.contextmanager
def open_bundle(path: Union[str, Path], plan: Optional[Plan] = None) -> Iterator[StoredBundle]:
    """The arrays of any supported weight file, described by their metadata (StoredArrays named by
    Keras/plan layer names, canonical layout), readable while the block runs.

    Nothing is read here: ``fit_bundle`` checks the arrays against a plan and reads what fits,
    ``read_stored`` reads them all (without a plan). ``plan`` is needed for Keras 3 files
    (groups are matched to its weighted layers by order) and for PyTorch files (keys and the
    fc1 flatten order are mapped with it).
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == SAFETENSORS:
        with stored_safetensors(path, plan) as bundle:
            yield bundle
    elif kind not in NEEDS_PLAN:
        with open_h5(path) as file:
            yield stored_keras_h5(file, str(path))
    elif plan is None:
        raise WeightsError(
            f"{path}: expected a spec to match a {DESCRIPTIONS[kind]} file's arrays to layers, received none"
        )
    elif kind == TORCH:
        yield stored_torch(path, plan)
    elif kind == KERAS_ARCHIVE:
        with stored_keras_archive(path, plan) as bundle:
            yield bundle
    else:
        with open_h5(path) as file:
            yield stored_keras3_h5(file, str(path), plan)


def read_bundle(path: Union[str, Path], plan: Optional[Plan] = None) -> WeightBundle:
    """Read any supported weight file into a bundle named by Keras/plan layer names, canonical layout.

    With a plan: the plan's weighted layers, each checked (shape, dtype) before it is
    read, as float32 (``fit_bundle``). Without one (legacy ``.h5`` and ``.safetensors``
    files only): every array as stored, at most MAX_STORED_BYTES in all (``read_stored``).
    """
    with open_bundle(path, plan) as stored:
        return fit_bundle(plan, stored)[0] if plan is not None else read_stored(stored)


def _float32(array: StoredArray, where: str) -> StoredArray:
    """``array`` as ``fit_bundle`` reads it: float32 (a float16, bfloat16 or float64 file widened or narrowed),
    every value finite."""
    return dataclasses.replace(array, dtype="float32", read=lambda: read_finite(array, where))


def checked_stored(plan: Plan, stored: StoredBundle) -> tuple[StoredBundle, Optional[str]]:
    """The plan's weighted layers of ``stored``, checked as ``fit_bundle`` checks them, on their metadata alone
    (WeightsError naming the layer and both shapes), nothing read: each array is read as float32 when asked, so
    that a writer can hold one array at a time. Layers under the plan's names and in its order (a file read by
    order is matched as ``fit_bundle`` matches it), the file's arrays the plan does not use as its ``extra``; the
    second item is its ``matching_note()`` (None: by name)."""
    checked, by_order, _ = check_bundle(plan, stored)
    floats = {
        layer: {name: _float32(array, f"{stored.source}: layer {layer}: {name}") for name, array in weights.items()}
        for layer, weights in checked.layers.items()
    }
    return StoredBundle(floats, stored.source, checked.extra), FittedBundle(
        source=stored.source, by_order=by_order
    ).matching_note()


def written_format(path: Union[str, Path], keras_version: int = 2) -> str:
    """The format :func:`write_bundle` writes for this name: one of the keys of DESCRIPTIONS."""
    kind = format_for_name(path)
    if kind == LEGACY_H5:
        return KERAS1 if keras_version == 1 else KERAS2
    if kind == KERAS_ARCHIVE:
        raise WeightsError(
            f"{path}: expected a weight file to write (.h5, .weights.h5, .safetensors or .pt), "
            "received a .keras name: a Keras model archive holds the model too"
        )  # how to make one is the command line's to add, with its own command
    return kind


def write_bundle(
    path: Union[str, Path],
    bundle: Union[WeightBundle, StoredBundle],
    plan: Optional[Plan] = None,
    keras_version: int = 2,
    progress: Optional[Progress] = None,
    meta: Optional[WeightsMeta] = None,
) -> None:
    """Write ``bundle`` in the format the name of ``path`` says, atomically, with ``meta`` (what the weights
    mean: :mod:`vggspec.weights.meta`) where the format holds it (every format written here does).

    With a plan the bundle is first checked against it (every layer, every shape)
    and legacy ``.h5`` files list the plan's weightless layers too, as Keras does.
    Keras 3 and PyTorch files need the plan. ``keras_version`` (1 or 2) picks the
    legacy ``.h5`` layout. ``progress`` wraps the iteration over layers (e.g. tqdm).
    A StoredBundle (a file's arrays, still open; it needs the plan) is checked on its
    metadata, then streamed to ``.safetensors`` and ``.pt`` (one array read at a time),
    read whole for the other formats.
    """
    path = Path(path)
    kind = written_format(path, keras_version)
    if kind in (KERAS3, TORCH) and plan is None:
        raise WeightsError(f"{path}: expected a spec to write a {DESCRIPTIONS[kind]} file, received none")
    if kind == TORCH:
        torch_module(path, "writing")  # torch is there, or the install hint, before any work
    if isinstance(bundle, StoredBundle):
        if plan is None:
            raise WeightsError(f"{path}: expected a spec to check a weight file's arrays against, received none")
        bundle, _ = checked_stored(plan, bundle)
        if kind not in STREAMED:
            bundle, _ = fit_bundle(plan, bundle)
    elif plan is not None:
        bundle, _ = fit_bundle(plan, bundle)
    progress = progress or (lambda items: items)
    meta_json = None if meta is None else meta.to_json()
    suffix = ".weights.h5" if kind == KERAS3 else path.suffix
    try:
        with atomic_path(path, suffix=suffix) as temporary:
            if kind == SAFETENSORS:
                write_safetensors(temporary, bundle, progress, meta_json)
            elif isinstance(bundle, StoredBundle):  # streamed: only .pt is left
                assert plan is not None
                write_torch(temporary, bundle, plan, progress, meta_json)
            elif plan is None:
                write_keras_h5(temporary, bundle, list(bundle.layers), keras_version, progress, meta_json)
            elif kind == KERAS3:
                write_keras3_h5(temporary, bundle, plan, progress, meta_json)
            elif kind == TORCH:
                write_torch(temporary, bundle, plan, progress, meta_json)
            else:
                names = [layer.name for layer in plan.layers]
                write_keras_h5(temporary, bundle, names, keras_version, progress, meta_json)
    except OSError as error:
        raise WeightsError(f"{path}: expected a writable destination, received {error.strerror or error}") from None
