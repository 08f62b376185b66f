"""A scene as SVG text: written by hand, no dependency, rendered by any browser as it is.

The file declares its size in pixels (``width``, ``height``: the width asked for, the height in
proportion) and keeps the scene's own coordinates in its ``viewBox``, so it scales cleanly.
"""

from __future__ import annotations

from typing import Optional
from xml.sax.saxutils import escape, quoteattr

from vggspec.drawing.scene import FONT_FAMILY, Dot, Item, Polyline, Rect, Scene, Text


def _number(value: float) -> str:
    """At most one decimal, no trailing zeros: ``12``, ``12.5``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def picture_size(scene: Scene, width: Optional[int] = None) -> tuple[int, int]:
    """(width, height) in whole pixels: ``width`` (the scene's own when None) and the height in proportion."""
    pixels = round(scene.width) if width is None else width
    return pixels, max(1, round(scene.height * pixels / scene.width))


def _attributes(**values: object) -> str:
    return "".join(f" {name.replace('_', '-')}={quoteattr(str(value))}" for name, value in values.items())


def _rect(rect: Rect) -> str:
    extra: dict[str, str] = {}
    if rect.stroke:
        extra.update(stroke=rect.stroke, stroke_width=_number(rect.stroke_width))
        if rect.dashed:
            extra["stroke_dasharray"] = "4 3"
    if rect.rounded:
        extra["rx"] = _number(rect.rounded)
    attributes = _attributes(
        x=_number(rect.x),
        y=_number(rect.y),
        width=_number(rect.width),
        height=_number(rect.height),
        fill=rect.fill,
        **extra,
    )
    if rect.tooltip is None:
        return f"<rect{attributes}/>"
    return f"<rect{attributes}><title>{escape(rect.tooltip)}</title></rect>"


def _text(text: Text) -> str:
    x, y = _number(text.x), _number(text.y)
    extra: dict[str, str] = {}
    if text.anchor != "start":
        extra["text_anchor"] = text.anchor
    if text.bold:
        extra["font_weight"] = "bold"
    if text.rotate:
        extra["transform"] = f"rotate({_number(text.rotate)} {x} {y})"
    attributes = _attributes(x=x, y=y, font_size=_number(text.size), fill=text.fill, **extra)
    return f"<text{attributes}>{escape(text.text)}</text>"


def _polyline(line: Polyline) -> str:
    points = " ".join(f"{_number(x)},{_number(y)}" for x, y in line.points)
    extra = {"stroke_dasharray": "6 4"} if line.dashed else {}
    attributes = _attributes(points=points, fill="none", stroke=line.stroke, stroke_width=_number(line.width), **extra)
    return f"<polyline{attributes}/>"


def _dot(dot: Dot) -> str:
    fill, stroke = ("white", dot.fill) if dot.hollow else (dot.fill, "none")
    attributes = _attributes(cx=_number(dot.x), cy=_number(dot.y), r=_number(dot.r), fill=fill, stroke=stroke)
    return f"<circle{attributes}/>"


def _item(item: Item) -> str:
    if isinstance(item, Rect):
        return _rect(item)
    if isinstance(item, Text):
        return _text(item)
    if isinstance(item, Polyline):
        return _polyline(item)
    return _dot(item)


def svg_text(scene: Scene, width: Optional[int] = None) -> str:
    """The whole SVG document of ``scene``, ``width`` pixels wide (the scene's own width when None)."""
    pixels, height = picture_size(scene, width)
    head = _attributes(
        xmlns="http://www.w3.org/2000/svg",
        width=pixels,
        height=height,
        viewBox=f"0 0 {_number(scene.width)} {_number(scene.height)}",
        font_family=FONT_FAMILY,
    )
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<svg{head}>"]
    if scene.title:
        lines.append(f"<title>{escape(scene.title)}</title>")
    lines.append('<rect width="100%" height="100%" fill="white"/>')
    lines += [_item(item) for item in scene.items]
    lines.append("</svg>")
    return "\n".join(lines) + "\n"
