"""What a picture is made of, whatever writes it: boxes, text, lines and dots in one coordinate space.

Coordinates are pixels of the picture at its natural size, x to the right and y down (as SVG
has them); a writer scales the whole scene to the width asked for. Text is set in a monospace
font (DejaVu Sans Mono, which matplotlib ships, or the browser's monospace), whose every
character advances 0.6 of the font size: so the layout knows each label's extent before any
font is loaded, and places labels where they cannot overlap (:func:`text_box`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

FONT_FAMILY = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace"
CHARACTER_WIDTH_EM = 0.6  # DejaVu Sans Mono advances 0.602 em, Menlo 0.602, Consolas 0.55, Liberation Mono 0.6
ASCENT_EM = 0.8  # from the baseline up to the top of the tallest glyph, rounded up
DESCENT_EM = 0.25  # from the baseline down to the bottom of a descender

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # (left, top, right, bottom)


@dataclass(frozen=True)
class Rect:
    """A filled rectangle; ``tooltip`` is shown by a browser over it (SVG only)."""

    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: Optional[str] = None
    stroke_width: float = 1.0
    dashed: bool = False
    rounded: float = 0.0
    tooltip: Optional[str] = None


@dataclass(frozen=True)
class Text:
    """One line of text; (x, y) is on its baseline, where ``anchor`` ("start", "middle", "end") says.
    ``rotate`` turns it about (x, y) by that many degrees, negative counterclockwise (-90 reads upwards)."""

    x: float
    y: float
    text: str
    size: float = 11.0
    anchor: str = "start"
    bold: bool = False
    fill: str = "#222222"
    rotate: float = 0.0


@dataclass(frozen=True)
class Polyline:
    """A line through ``points``, not filled."""

    points: tuple[Point, ...]
    stroke: str
    width: float = 1.0
    dashed: bool = False


@dataclass(frozen=True)
class Dot:
    """A filled circle of radius ``r`` (a marker of a plotted value); ``hollow`` leaves it white inside."""

    x: float
    y: float
    r: float
    fill: str
    hollow: bool = False


Item = Union[Rect, Text, Polyline, Dot]


@dataclass
class Scene:
    """A picture: its natural size in pixels, its items in drawing order, and a title (SVG's ``<title>``)."""

    width: float
    height: float
    title: str = ""
    items: list[Item] = field(default_factory=list)

    def add(self, *items: Item) -> None:
        self.items.extend(items)

    def texts(self) -> list[Text]:
        return [item for item in self.items if isinstance(item, Text)]


def text_width(text: str, size: float) -> float:
    """The advance of ``text`` in the monospace font at ``size`` pixels."""
    return len(text) * CHARACTER_WIDTH_EM * size


def text_box(text: Text) -> Box:
    """The rectangle ``text`` covers (left, top, right, bottom), rotation included."""
    width = text_width(text.text, text.size)
    left = {"start": 0.0, "middle": -width / 2, "end": -width}[text.anchor]
    corners = [(dx, dy) for dx in (left, left + width) for dy in (-ASCENT_EM * text.size, DESCENT_EM * text.size)]
    angle = math.radians(text.rotate)
    cos, sin = math.cos(angle), math.sin(angle)
    xs = [text.x + dx * cos - dy * sin for dx, dy in corners]
    ys = [text.y + dx * sin + dy * cos for dx, dy in corners]
    return (min(xs), min(ys), max(xs), max(ys))


def boxes_overlap(first: Box, second: Box) -> bool:
    """Whether two boxes share more than an edge."""
    return first[0] < second[2] and second[0] < first[2] and first[1] < second[3] and second[1] < first[3]


def overlapping_texts(scene: Scene) -> list[tuple[str, str]]:
    """Every pair of the scene's texts whose boxes overlap (what the layout must never make)."""
    texts = scene.texts()
    boxes = [text_box(text) for text in texts]
    return [
        (texts[i].text, texts[j].text)
        for i in range(len(texts))
        for j in range(i + 1, len(texts))
        if boxes_overlap(boxes[i], boxes[j])
    ]
