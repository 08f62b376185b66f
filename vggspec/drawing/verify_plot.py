"""A verify report plotted: each layer's relative difference per pair of backends, on a log scale.

Drawn from the report's JSON form (``ParityReport.to_dict()``, what ``vggspec verify`` prints
as JSON), so that it reads only documented fields: ``layers`` (each with ``name``, ``rel_diff`` and,
where the report has them, ``pairs``: every pair's ``rel_diff``), ``tolerance``,
``first_divergent_layer``, ``backends``, ``spec`` and ``ok``. A report without ``pairs`` is drawn
as one line, its worst pair per layer. A difference of 0 is drawn on a row under the axis, a
non-finite one (null in JSON: NaN or infinity) on a row above it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from vggspec.drawing.scene import Dot, Polyline, Rect, Scene, Text, text_box, text_width
from vggspec.drawing.style import FONT, LINE, MARGIN

PLOT_HEIGHT, EDGE_ROW = 280.0, 14.0  # the log axis' height, the 0 and ∞ rows' distance from it
STEP, PLOT_WIDTH = 18.0, 480.0  # px per layer at least (a rotated label is 14 px), the axis' width at least
TITLE_FONT = 14.0
COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#9c755f", "#ff9da7", "#edc948")
DIVERGES = "#d62728"
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

Series = tuple[str, list[Optional[float]]]  # (label, each layer's relative difference; None when not finite)


def _finite(value: Any) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None


def report_series(report: Mapping[str, Any]) -> list[Series]:
    """One series per pair of backends ("keras / torch"), or the worst pair's alone when the report
    has no per-pair numbers."""
    layers = report["layers"]
    if layers and all(layer.get("pairs") for layer in layers):
        labels = [" / ".join(entry["pair"]) for entry in layers[0]["pairs"]]
        values: dict[str, list[Optional[float]]] = {label: [] for label in labels}
        for layer in layers:
            found = {" / ".join(entry["pair"]): entry["rel_diff"] for entry in layer["pairs"]}
            for label in labels:
                values[label].append(_finite(found.get(label)))
        return [(label, values[label]) for label in labels]
    return [("worst pair", [_finite(layer["rel_diff"]) for layer in layers])]


def _decades(series: Sequence[Series], tolerance: float) -> tuple[int, int]:
    """(lowest, highest) power of ten of the axis: every positive value and the tolerance, a decade either side."""
    logs = [math.log10(value) for _, values in series for value in values if value]
    exponent = math.log10(tolerance)
    low = math.floor(min([*logs, exponent - 1]))
    high = math.ceil(max([*logs, exponent + 1]))
    return low, high


def _power(exponent: int) -> str:
    return "10" + str(exponent).translate(SUPERSCRIPTS)


def draw_verify_report(report: Mapping[str, Any]) -> Scene:
    """The plot of ``report`` (the JSON form of a verify report)."""
    names = [layer["name"] for layer in report["layers"]]
    series, tolerance = report_series(report), float(report["tolerance"])
    first = report.get("first_divergent_layer")
    scene = Scene(0.0, 0.0, title=f"vggspec verify {report['spec']}: relative difference per layer")
    verdict = "OK: every layer within tolerance" if report["ok"] else "FAILED"
    if first is not None:
        verdict += f": first diverging layer {first}"
    scene.add(Text(MARGIN, MARGIN + TITLE_FONT, scene.title + f" ({' vs '.join(report['backends'])})",
                   TITLE_FONT, bold=True))  # fmt: skip
    scene.add(Text(MARGIN, MARGIN + TITLE_FONT + LINE + 4, verdict, FONT, bold=True,
                   fill="#2e7d32" if report["ok"] else DIVERGES))  # fmt: skip
    low, high = _decades(series, tolerance)
    left = MARGIN + LINE + text_width(_power(-10), FONT) + 10
    right = left + max(STEP * len(names), PLOT_WIDTH)
    top = _legend(scene, series, left, right, MARGIN + TITLE_FONT + 2 * LINE + 12) + LINE + 2 * EDGE_ROW
    axis = _Axis(left, right, top, low, high, len(names))
    _frame(scene, axis, tolerance)
    for number, (_, values) in enumerate(series):
        _plot_series(scene, axis, values, COLOURS[number % len(COLOURS)])
    bottom = _layer_names(scene, axis, names, first)
    scene.width = max(text_box(text)[2] for text in scene.texts()) + MARGIN
    scene.width = max(scene.width, right + MARGIN)
    scene.height = bottom + MARGIN
    return scene


class _Axis:
    """Where a layer and a relative difference go: x by the layer's index, y by the log of the value."""

    def __init__(self, left: float, right: float, top: float, low: int, high: int, layers: int):
        self.left, self.right, self.top, self.low, self.high = left, right, top, low, high
        self.bottom = top + PLOT_HEIGHT
        self.step = (right - left) / max(1, layers)

    def x(self, index: int) -> float:
        return self.left + self.step * (index + 0.5)

    def y(self, value: Optional[float]) -> float:
        if value is None:
            return self.top - EDGE_ROW
        if value <= 0:
            return self.bottom + EDGE_ROW
        return self.top + (self.high - math.log10(value)) / (self.high - self.low) * PLOT_HEIGHT


def _legend(scene: Scene, series: Sequence[Series], left: float, right: float, y: float) -> float:
    """A line and the label of each series, in rows; returns the y below them."""
    x = left
    for number, (label, _) in enumerate(series):
        advance = 24 + text_width(label, FONT) + 16
        if x > left and x + advance > right:
            x, y = left, y + LINE
        colour = COLOURS[number % len(COLOURS)]
        scene.add(Polyline(((x, y - 4), (x + 18, y - 4)), colour, 2.0), Dot(x + 9, y - 4, 2.5, colour))
        scene.add(Text(x + 24, y, label, FONT))
        x += advance
    return y + 4


def _frame(scene: Scene, axis: _Axis, tolerance: float) -> None:
    """The plot's frame, a grid line and a label at every power of ten, the 0 and ∞ rows, the tolerance."""
    scene.add(Rect(axis.left, axis.top, axis.right - axis.left, PLOT_HEIGHT, "none", "#888888", 0.8))
    decades = axis.high - axis.low
    every = max(1, math.ceil(decades * LINE * 1.2 / PLOT_HEIGHT))
    for exponent in range(axis.low, axis.high + 1):
        y = axis.y(10.0**exponent)
        scene.add(Polyline(((axis.left, y), (axis.right, y)), "#e3e3e3", 0.8))
        if (exponent - axis.low) % every == 0:
            scene.add(Text(axis.left - 6, y + FONT * 0.35, _power(exponent), FONT, anchor="end"))
    for value, label in ((0.0, "0"), (None, "∞")):
        scene.add(Text(axis.left - 6, axis.y(value) + FONT * 0.35, label, FONT, anchor="end", fill="#777777"))
    y = axis.y(tolerance)
    scene.add(Polyline(((axis.left, y), (axis.right, y)), DIVERGES, 1.2, dashed=True))
    scene.add(Text(axis.right - 4, y - 4, f"tolerance {tolerance:g}", FONT, anchor="end", fill=DIVERGES))
    middle = (axis.top + axis.bottom) / 2
    scene.add(Text(MARGIN + FONT, middle, "relative difference", FONT, anchor="middle", rotate=-90))


def _plot_series(scene: Scene, axis: _Axis, values: Sequence[Optional[float]], colour: str) -> None:
    """A line through the runs of positive values, a dot at every value (hollow at 0 and ∞)."""
    run: list[tuple[float, float]] = []
    for index, value in enumerate([*values, 0.0]):  # the 0 at the end closes the last run
        if value is not None and value > 0:
            run.append((axis.x(index), axis.y(value)))
            continue
        if len(run) > 1:
            scene.add(Polyline(tuple(run), colour, 1.5))
        run = []
    for index, value in enumerate(values):
        regular = value is not None and value > 0
        scene.add(Dot(axis.x(index), axis.y(value), 2.5, colour, hollow=not regular))


def _layer_names(scene: Scene, axis: _Axis, names: Sequence[str], first: Optional[str]) -> float:
    """Each layer's name under the axis, reading upwards; the first diverging layer marked. Returns the bottom."""
    top = axis.bottom + EDGE_ROW + LINE
    for index, name in enumerate(names):
        x = axis.x(index)
        marked = name == first
        if marked:
            band = Rect(x - axis.step / 2, axis.top - 2 * EDGE_ROW, axis.step, PLOT_HEIGHT + 4 * EDGE_ROW, "#fde2e2")
            scene.add(band)
            scene.items.insert(0, scene.items.pop())  # under everything else
            scene.add(Polyline(((x, axis.top - 2 * EDGE_ROW), (x, axis.bottom + 2 * EDGE_ROW)), DIVERGES, 1.2))
            middle = (axis.left + axis.right) / 2
            label = f"first diverging layer: {name}"
            anchor = "start" if x < middle else "end"
            scene.add(Text(x, axis.top - 2 * EDGE_ROW - 6, label, FONT, anchor=anchor, bold=True, fill=DIVERGES))
        scene.add(Text(x + FONT * 0.35, top, name, FONT, anchor="end", rotate=-90, bold=marked,
                       fill=DIVERGES if marked else "#222222"))  # fmt: skip
    longest = max((text_width(name, FONT) for name in names), default=0.0)
    return top + longest
