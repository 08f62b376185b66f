"""A scene as a PNG, drawn by matplotlib (the optional extra ``vggspec[plot]``).

matplotlib is imported here only, when a PNG is asked for, with its Agg canvas (no display,
no pyplot state). One axes fills the figure with the scene's coordinates (y down), so every
item lands where the SVG writer puts it; text is set in DejaVu Sans Mono, which matplotlib ships.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from vggspec.drawing.scene import Dot, Polyline, Rect, Scene, Text
from vggspec.drawing.svg import picture_size
from vggspec.fileio import atomic_path

DPI = 100
FONT = "DejaVu Sans Mono"
_ANCHORS = {"start": "left", "middle": "center", "end": "right"}


def _draw(axes: Any, item: object, point: float) -> None:
    """One item on ``axes``; ``point`` is one scene pixel in typographic points (line widths, font sizes)."""
    from matplotlib.patches import Circle, Rectangle

    if isinstance(item, Rect):
        axes.add_patch(
            Rectangle(
                (item.x, item.y),
                item.width,
                item.height,
                facecolor=item.fill,
                edgecolor=item.stroke or "none",
                linewidth=item.stroke_width * point if item.stroke else 0,
                linestyle="--" if item.dashed else "-",
            )
        )
    elif isinstance(item, Text):
        axes.text(
            item.x,
            item.y,
            item.text,
            fontsize=item.size * point,
            family=FONT,
            ha=_ANCHORS[item.anchor],
            va="baseline",
            rotation=-item.rotate,
            rotation_mode="anchor",
            color=item.fill,
            weight="bold" if item.bold else "normal",
        )
    elif isinstance(item, Polyline):
        xs, ys = zip(*item.points)
        axes.plot(xs, ys, color=item.stroke, linewidth=item.width * point, linestyle="--" if item.dashed else "-")
    elif isinstance(item, Dot):
        face = "white" if item.hollow else item.fill
        axes.add_patch(Circle((item.x, item.y), item.r, facecolor=face, edgecolor=item.fill, linewidth=point))


@contextlib.contextmanager
def png_figure(scene: Scene, width: Optional[int] = None) -> Iterator[Any]:
    """A matplotlib Figure of ``scene`` (on an Agg canvas), ``width`` pixels wide (the scene's own when None),
    to save or measure inside the block: there text is not hinted, so that a label is as wide as the layout
    planned (hinting rounds each character's advance to whole pixels: 7 px instead of 6.6 at 11 px)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pixels, height = picture_size(scene, width)
    with matplotlib.rc_context({"text.hinting": "no_hinting"}):
        # a hair over the size: the canvas is the size in inches times the dpi, rounded down
        figure = Figure(figsize=((pixels + 0.01) / DPI, (height + 0.01) / DPI), dpi=DPI)
        FigureCanvasAgg(figure)
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_xlim(0, scene.width)
        axes.set_ylim(scene.height, 0)
        axes.axis("off")
        point = pixels / scene.width * 72 / DPI
        for item in scene.items:
            _draw(axes, item, point)
        yield figure


def write_png(scene: Scene, path: Union[str, Path], width: Optional[int] = None) -> None:
    """``scene`` as a PNG at ``path``, written whole or not at all."""
    with png_figure(scene, width) as figure, atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", facecolor="white", metadata={"Software": None})
