"""PyTorch ``.pt`` / ``.pth`` files: a torchvision-style state dict saved with ``torch.save``.

Keys and layout are torchvision's VGG (``features.0.weight`` OIHW, ``classifier.0.weight``
(out, in) with fc1's columns in C,H,W order); :mod:`vggspec.weights.layout` maps them to
and from the canonical layout with the plan. torch is imported only here, inside the
functions, and files are read with ``weights_only=True`` (no code runs from a file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.layout import bundle_to_torch, torch_to_bundle

# Containers that training scripts wrap a state dict in.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def _state_dict(loaded: Any, path: Path) -> dict[str, Any]:
    import torch

    for key in WRAPPER_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise WeightsError(f"{path}: expected a state dict (names -> tensors), received {type(loaded).__name__}")
    # A model saved from nn.DataParallel has every key under "module."
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def read_torch(path: Union[str, Path], plan: Plan) -> WeightBundle:
    """Read a torchvision-style state dict and map it to the canonical layout with ``plan``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: expected a weight file, received a path that does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: expected a PyTorch state dict saved with torch.save, received a file "
                           f"torch cannot read ({reason})") from None
    # numpy has no bfloat16: half-precision tensors are widened to float32
    state = {key: (tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor).numpy()
             for key, tensor in _state_dict(loaded, path).items()}
    return torch_to_bundle(plan, state, source=str(path))


def write_torch(path: Union[str, Path], bundle: WeightBundle, plan: Plan,
                progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items) -> None:
    """Write ``bundle`` (checked against ``plan``) as a torchvision-style state dict of CPU tensors."""
    import torch

    state: dict[str, Any] = {}
    for layer in progress(list(bundle.layers)):
        one_layer = WeightBundle(layers={layer: bundle.layers[layer]})
        for key, array in bundle_to_torch(plan, one_layer).items():
            state[key] = torch.from_numpy(np.ascontiguousarray(array))
    torch.save(state, path)
