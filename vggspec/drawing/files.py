"""Where a picture goes: its format from the file's extension (.svg or .png), checked before any work.

SVG needs nothing; PNG needs matplotlib (``pip install "vggspec[plot]"``). A picture is written whole
or not at all (:func:`vggspec.fileio.atomic_path`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional, Union

from vggspec.drawing.scene import Scene
from vggspec.errors import VggspecError
from vggspec.fileio import atomic_path, check_destination

FORMATS = (".svg", ".png")
MIN_WIDTH, MAX_WIDTH = 100, 10_000  # pixels


def picture_format(path: Union[str, Path], setting: str) -> str:
    """The format, ".svg" or ".png", from ``path``'s extension; an error naming ``setting`` for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        received = repr(suffix) if suffix else "no extension"
        raise VggspecError(
            f"{setting} {path}: expected a file name ending in .svg or .png, received {received}",
            setting=setting,
        )
    return suffix


def check_picture_destination(path: Union[str, Path], setting: str, width: Optional[int] = None) -> None:
    """Everything that could stop ``path`` from being written, before the work that makes the picture:
    its extension, the place (:func:`check_destination`), matplotlib for a PNG, and the ``width``."""
    suffix = picture_format(path, setting)
    check_destination(path, setting)
    if suffix == ".png" and importlib.util.find_spec("matplotlib") is None:
        raise VggspecError(
            f'{setting} {path}: a PNG needs matplotlib, which is not installed (pip install "vggspec[plot]"), '
            "or write an .svg",
            setting=setting,
        )
    if width is not None and not MIN_WIDTH <= width <= MAX_WIDTH:
        raise VggspecError(f"width: expected {MIN_WIDTH} to {MAX_WIDTH:,} pixels, received {width}", setting="width")


def write_picture(scene: Scene, path: Union[str, Path], setting: str, width: Optional[int] = None) -> None:
    """``scene`` written to ``path`` as SVG or PNG (by its extension), ``width`` pixels wide (the scene's
    own when None)."""
    check_picture_destination(path, setting, width)
    try:
        if picture_format(path, setting) == ".png":
            from vggspec.drawing.png import write_png

            write_png(scene, path, width)
            return
        from vggspec.drawing.svg import svg_text

        with atomic_path(path, suffix=".svg") as temporary:
            temporary.write_text(svg_text(scene, width), encoding="utf-8")
    except OSError as error:  # the disk filled, the folder went away meanwhile
        raise VggspecError(
            f"{setting} {path}: expected a writable destination, received {error.strerror or error}", setting=setting
        ) from None
