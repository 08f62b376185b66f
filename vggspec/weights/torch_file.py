"""PyTorch ``.pt`` / ``.pth`` files: a torchvision-style state dict saved with ``torch.save``.

Keys and layout are torchvision's VGG (``features.0.weight`` OIHW, ``classifier.0.weight``
(out, in) with fc1's columns in C,H,W order); :mod:`vggspec.weights.torchvision` maps them to
and from the canonical layout with the plan, after ``fit_bundle`` has checked each shape
and dtype. torch is imported only here, inside the functions, and files are read with
``weights_only=True`` (no code runs from a file). A zip-format file's members are first
held to the sizes the spec's parameters can need (declared sizes, nothing decompressed).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import StoredArray, StoredBundle, WeightBundle, archive_bytes_limit
from vggspec.weights.torchvision import bundle_to_torch, torch_to_stored
from vggspec.weights.zip_archive import check_total_size, declared_sizes

# Containers that training scripts wrap a state dict in.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
WHAT = "a PyTorch state dict saved with torch.save"


def _state_dict(loaded: Any, path: Path) -> dict[str, Any]:
    import torch

    for key in WRAPPER_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
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


def _load_reason(error: Exception) -> str:
    """torch.load's error in one short line (the weights-only unpickler's own reason, without its advice)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.endswith("WeightsUnpickler error:") and index + 1 < len(lines):
            return f"the weights-only unpickler refused it: {lines[index + 1][:200]}"
    return lines[0][:200] if lines else type(error).__name__


def stored_torch(path: Union[str, Path], plan: Plan) -> StoredBundle:
    """Describe a torchvision-style state dict, mapped to the canonical layout with ``plan`` (StoredArrays)."""
    import torch

    path = Path(path)
    if zipfile.is_zipfile(path):  # torch.save's format since torch 1.6
        check_total_size(path, declared_sizes(path, WHAT), archive_bytes_limit(plan.total_params), WHAT)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 126": the error says enough
            warnings.simplefilter("ignore", UserWarning)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        raise WeightsError(
            f"{path}: expected {WHAT}, received a file torch cannot read ({_load_reason(error)})"
        ) from None
    state = {key: _stored(path, key, tensor) for key, tensor in _state_dict(loaded, path).items()}
    return torch_to_stored(plan, state, source=str(path))


def write_torch(
    path: Union[str, Path],
    bundle: WeightBundle,
    plan: Plan,
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items,
) -> None:
    """Write ``bundle`` (checked against ``plan``) as a torchvision-style state dict of CPU tensors."""
    import torch

    state: dict[str, Any] = {}
    for layer in progress(list(bundle.layers)):
        one_layer = WeightBundle(layers={layer: bundle.layers[layer]})
        for key, array in bundle_to_torch(plan, one_layer).items():
            state[key] = torch.from_numpy(np.ascontiguousarray(array))
    torch.save(state, path)
