"""The parts of a network drawing below its boxes: the strip of parameters and the legend."""

from __future__ import annotations

from typing import Sequence

from vggspec.drawing.scene import Rect, Scene, Text, text_width
from vggspec.drawing.style import FONT, LARGEST, LINE, MARGIN, STATUS_STYLE, kind_colour, kind_word
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan

STRIP_HEIGHT, STRIP_FONT = 18.0, 10.0
SWATCH = 10.0


def parameter_strip(scene: Scene, plan: Plan, x: float, y: float, length: float) -> float:
    """A bar ``length`` long shared among the layers holding parameters, each in its colour and as long as
    its share; a layer's name and share written on it where they fit. Returns the y below it."""
    scene.add(Text(x, y + FONT, f"parameters by layer ({plan.total_params:,} in all):", FONT, fill="#555555"))
    top = y + LINE
    for layer in plan.layers:
        if not layer.params or not plan.total_params:
            continue
        share = layer.params / plan.total_params
        width = length * share
        scene.add(
            Rect(x, top, width, STRIP_HEIGHT, kind_colour(layer), "white", 0.5, tooltip=f"{layer.name} {share:.1%}")
        )
        label = f"{layer.name} {share:.0%}"
        if text_width(label, STRIP_FONT) + 6 <= width:
            baseline = top + STRIP_HEIGHT / 2 + STRIP_FONT * 0.35
            scene.add(Text(x + width / 2, baseline, label, STRIP_FONT, anchor="middle", bold=True, fill="white"))
        x += width
    return top + STRIP_HEIGHT + LINE * 0.6


def _entries(layers: Sequence[PlanLayer], statuses: set[str]) -> list[tuple[str, str, str]]:
    """(fill, outline, words) of each legend entry: the kinds drawn, then the marks."""
    entries: list[tuple[str, str, str]] = []
    for layer in layers:
        entry = (kind_colour(layer), "#333333", kind_word(layer))
        if entry not in entries:
            entries.append(entry)
    if statuses == {"same"}:
        entries.append(("white", LARGEST, "most parameters"))
    entries += [
        ("white", STATUS_STYLE[status][0], STATUS_STYLE[status][2]) for status in STATUS_STYLE if status in statuses
    ]
    return entries


def legend(scene: Scene, layers: Sequence[PlanLayer], statuses: set[str], y: float, width: float) -> float:
    """A swatch and the words for each kind of layer drawn (and each mark), in rows at most ``width`` long."""
    x = MARGIN
    y += LINE * 0.5
    for fill, outline, words in _entries(layers, statuses):
        advance = SWATCH + 4 + text_width(words, FONT) + 14
        if x > MARGIN and x + advance > MARGIN + width:
            x, y = MARGIN, y + LINE
        heavy = outline != "#333333"
        scene.add(Rect(x, y + 2, SWATCH, SWATCH, fill, outline, 2.0 if heavy else 0.5))
        scene.add(Text(x + SWATCH + 4, y + FONT, words, FONT))
        x += advance
    return y + LINE * 1.2
