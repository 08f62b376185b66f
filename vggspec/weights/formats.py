"""Read and write any supported weight file, choosing the format by its name and content.

- ``*.h5``, ``*.hdf5``: Keras 1 or Keras 2 HDF5, also a full-model file's ``model_weights/``
  (:mod:`.keras_h5`);
- ``*.weights.h5``: Keras 3's ``save_weights`` (:mod:`.keras3_h5`);
- ``*.safetensors``: the bundle's keys, canonical layout (:mod:`.safetensors_file`);
- ``*.pt``, ``*.pth``: a torchvision-style state dict (:mod:`.torch_file`).

An existing HDF5 file is read as what its own attributes say it is (``layer_names``
with or without ``keras_version``, ``model_weights/``, ``layers/``), whatever its
name. Every write goes through :func:`vggspec.fileio.atomic_path`: a failed write
leaves nothing behind and an existing destination untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from vggspec.errors import WeightsError
from vggspec.fileio import atomic_path
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.keras3_h5 import read_keras3_h5, write_keras3_h5
from vggspec.weights.keras_h5 import legacy_root, open_h5, read_keras_h5, write_keras_h5
from vggspec.weights.layout import fit_bundle
from vggspec.weights.safetensors_file import read_safetensors, write_safetensors
from vggspec.weights.torch_file import read_torch, write_torch

KERAS1 = "keras1-h5"
KERAS2 = "keras2-h5"
KERAS_MODEL = "keras-model-h5"
KERAS3 = "keras3-weights-h5"
SAFETENSORS = "safetensors"
TORCH = "torch"

DESCRIPTIONS = {
    KERAS1: "Keras 1 HDF5 weights",
    KERAS2: "Keras 2 HDF5 weights",
    KERAS_MODEL: "Keras HDF5 model (model_weights/)",
    KERAS3: "Keras 3 .weights.h5",
    SAFETENSORS: "safetensors",
    TORCH: "PyTorch state dict",
}
SUPPORTED_NAMES = ".h5 or .hdf5 (Keras 1/2), .weights.h5 (Keras 3), .safetensors, .pt or .pth (PyTorch)"
LEGACY_H5 = "keras-h5"  # a legacy .h5 name, before its content says Keras 1, 2 or a model file

Progress = Callable[[Iterable], Iterable]


def format_for_name(path: Union[str, Path]) -> str:
    """The format a file name asks for: KERAS3, LEGACY_H5, SAFETENSORS or TORCH."""
    name = Path(path).name.lower()
    if name.endswith(".weights.h5"):
        return KERAS3
    if name.endswith((".h5", ".hdf5")):
        return LEGACY_H5
    if name.endswith(".safetensors"):
        return SAFETENSORS
    if name.endswith((".pt", ".pth")):
        return TORCH
    raise WeightsError(f"{path}: expected a weight file named {SUPPORTED_NAMES}, received {Path(path).name!r}")


def _sniff_h5(path: Path) -> str:
    with open_h5(path) as file:
        root = legacy_root(file)
        if root is not None and root is not file:
            return KERAS_MODEL
        if root is not None:
            return KERAS2 if "keras_version" in file.attrs else KERAS1
        if "layers" in file:
            return KERAS3
    raise WeightsError(f"{path}: expected Keras weights (the attribute layer_names, a model_weights/ group or a "
                       "Keras 3 layers/ group), received an HDF5 file with none of them")


def detect_format(path: Union[str, Path]) -> str:
    """The format of an existing weight file: one of the keys of DESCRIPTIONS.

    HDF5 files are told apart by their own attributes: ``layer_names`` without
    ``keras_version`` is Keras 1, with it Keras 2 (also what Keras 3's legacy writer
    makes), ``model_weights/`` a full-model file, ``layers/`` Keras 3.
    """
    path = Path(path)
    kind = format_for_name(path)
    if not path.is_file():
        raise WeightsError(f"{path}: expected a weight file, received a path that does not exist")
    return _sniff_h5(path) if kind in (LEGACY_H5, KERAS3) else kind


def read_bundle(path: Union[str, Path], plan: Optional[Plan] = None) -> WeightBundle:
    """Read any supported weight file into a bundle named by Keras/plan layer names, canonical layout.

    ``plan`` is needed for Keras 3 files (groups are matched to its weighted layers
    by order) and for PyTorch files (keys and the fc1 flatten order are mapped with
    it). Shapes are not checked here: :func:`vggspec.weights.layout.fit_bundle` does.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind in (KERAS3, TORCH) and plan is None:
        raise WeightsError(f"{path}: expected a spec to match a {DESCRIPTIONS[kind]} file's arrays to layers, "
                           "received none")
    if kind == KERAS3:
        return read_keras3_h5(path, plan)
    if kind == SAFETENSORS:
        return read_safetensors(path, plan)
    if kind == TORCH:
        return read_torch(path, plan)
    return read_keras_h5(path)


def written_format(path: Union[str, Path], keras_version: int = 2) -> str:
    """The format :func:`write_bundle` writes for this name: one of the keys of DESCRIPTIONS."""
    kind = format_for_name(path)
    if kind == LEGACY_H5:
        return KERAS1 if keras_version == 1 else KERAS2
    return kind


def write_bundle(path: Union[str, Path], bundle: WeightBundle, plan: Optional[Plan] = None,
                 keras_version: int = 2, progress: Optional[Progress] = None) -> None:
    """Write ``bundle`` in the format the name of ``path`` says, atomically.

    With a plan the bundle is first checked against it (every layer, every shape)
    and legacy ``.h5`` files list the plan's weightless layers too, as Keras does.
    Keras 3 and PyTorch files need the plan. ``keras_version`` (1 or 2) picks the
    legacy ``.h5`` layout. ``progress`` wraps the iteration over layers (e.g. tqdm).
    """
    path = Path(path)
    kind = written_format(path, keras_version)
    if kind in (KERAS3, TORCH) and plan is None:
        raise WeightsError(f"{path}: expected a spec to write a {DESCRIPTIONS[kind]} file, received none")
    if plan is not None:
        bundle, _ = fit_bundle(plan, bundle)
    progress = progress or (lambda items: items)
    suffix = ".weights.h5" if kind == KERAS3 else path.suffix
    try:
        with atomic_path(path, suffix=suffix) as temporary:
            if kind == KERAS3:
                write_keras3_h5(temporary, bundle, plan, progress)
            elif kind == SAFETENSORS:
                write_safetensors(temporary, bundle, progress)
            elif kind == TORCH:
                write_torch(temporary, bundle, plan, progress)
            else:
                names = [layer.name for layer in plan.layers] if plan is not None else list(bundle.layers)
                write_keras_h5(temporary, bundle, names, keras_version, progress)
    except OSError as error:
        raise WeightsError(f"{path}: expected a writable destination, received {error.strerror or error}") from None
