"""Generated source: a spec's plan as one readable, standalone Python file for Keras or PyTorch.

The file imports only its framework, never vggspec: a Keras ``Sequential`` model (one
``model.add`` a layer, as a tutorial writes it) or a functional one (as
``keras.applications.vgg16``), layers named as the Keras backend names them; or a PyTorch
``nn.Module`` whose ``state_dict`` keys are torchvision's (the torch backend's), with ``build()``.
Each is built from the plan's typed layers (:mod:`.keras_source`, :mod:`.torch_source`) and laid
out as ``ruff format`` lays it out (:mod:`.common`). vggspec's command: ``vggspec codegen``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from vggspec.codegen.keras_source import STYLES as KERAS_STYLES
from vggspec.codegen.keras_source import keras_source
from vggspec.codegen.torch_source import torch_source
from vggspec.errors import VggspecError
from vggspec.fileio import atomic_path, check_destination
from vggspec.planner.lower import Plan

FRAMEWORKS = ("keras", "torch")
DEFAULT_KERAS_STYLE = "sequential"

__all__ = ["DEFAULT_KERAS_STYLE", "FRAMEWORKS", "KERAS_STYLES", "chosen_style", "generate_source", "write_source"]


def chosen_style(framework: str, style: Optional[str]) -> Optional[str]:
    """The style to write: Keras' (default sequential); torch has one form and takes none."""
    if framework not in FRAMEWORKS:
        raise VggspecError(
            f"framework: expected one of {', '.join(FRAMEWORKS)}, received {framework!r}", setting="framework"
        )
    if framework == "torch" and style is not None:
        raise VggspecError(
            f"style: expected no style for torch (its file is one nn.Module, as torchvision writes VGG), "
            f"received {style!r}; styles are Keras': {', '.join(KERAS_STYLES)}",
            setting="style",
        )
    return (style or DEFAULT_KERAS_STYLE) if framework == "keras" else None


def generate_source(plan: Plan, framework: str, style: Optional[str] = None, command: str = "") -> str:
    """The Python source of ``plan`` for ``framework`` ("keras" or "torch"), in ``style`` (Keras:
    "sequential", the default, or "functional"). ``command`` is written
    in the header as the way to regenerate the file (vggspec's command writes its own command line)."""
    chosen = chosen_style(framework, style)
    if chosen is not None:
        return keras_source(plan, chosen, command)
    return torch_source(plan, command)


def write_source(path: Union[str, Path], source: str) -> None:
    """Write ``source`` to ``path`` atomically (nothing half-written; an existing file replaced only on success).

    A folder, a path under a file or an unwritable place is refused naming the setting ``out``.
    """
    path = Path(path)
    check_destination(path, "out")
    try:
        with atomic_path(path, suffix=".py") as temporary:
            temporary.write_text(source, encoding="utf-8")
    except OSError as error:
        raise VggspecError(
            f"out {path}: expected a writable destination, received {error.strerror or error}", setting="out"
        ) from None
