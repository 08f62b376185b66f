"""Where the files shipped with vggspec live (spec files, schemas, class index)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def specs_dir() -> Path:
    """The shipped ``specs/`` folder (``vggspec/specs`` links to the top-level ``specs/``)."""
    return Path(str(resources.files("vggspec") / "specs"))


def data_file(name: str) -> Path:
    """A data file shipped inside the package (``vggspec/data_files/NAME``)."""
    return Path(str(resources.files("vggspec") / "data_files" / name))
