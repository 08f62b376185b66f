"""A verify report plotted from its JSON form: one line per pair of backends on a log axis, the tolerance,
the first diverging layer marked; zero and non-finite differences on rows of their own."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from vggspec.drawing.scene import Dot, Polyline, overlapping_texts
from vggspec.drawing.svg import svg_text
from vggspec.drawing.verify_plot import draw_verify_report, report_series

SVG = "{http://www.w3.org/2000/svg}"
NAMES = ["input_layer", "block1_conv1", "block1_pool", "flatten", "fc1", "fc2", "predictions"]
PAIRS = [("keras", "torch"), ("keras", "naive_torch"), ("torch", "naive_torch")]


def three_way_report() -> dict:
    """keras and torch agree everywhere; naive_torch diverges from fc1 on, and gives NaN at the output."""
    layers = []
    for index, name in enumerate(NAMES):
        pairs = []
        for pair in PAIRS:
            value = 0.0 if index == 0 else 3e-7 * index
            if index >= 4 and "naive_torch" in pair:
                value = 0.5
            if name == "predictions" and "naive_torch" in pair:
                value = None  # strict JSON writes NaN and infinity as null
            pairs.append({"pair": list(pair), "max_abs_diff": value, "rel_diff": value})
        worst = max(pairs, key=lambda entry: float("inf") if entry["rel_diff"] is None else entry["rel_diff"])
        layers.append({"name": name, "rel_diff": worst["rel_diff"], "pair": worst["pair"], "pairs": pairs})
    return {
        "spec": "small",
        "backends": ["keras", "torch", "naive_torch"],
        "ok": False,
        "tolerance": 1e-4,
        "first_divergent_layer": "fc1",
        "layers": layers,
    }


def texts(svg: str) -> list[str]:
    return [element.text or "" for element in ElementTree.fromstring(svg.encode()).iter(f"{SVG}text")]


def test_each_pair_of_backends_is_a_series():
    series = report_series(three_way_report())
    assert [label for label, _ in series] == ["keras / torch", "keras / naive_torch", "torch / naive_torch"]
    assert series[0][1] == [0.0, 3e-7, 6e-7, 9e-7, 1.2e-6, 1.5e-6, 1.8e-6]
    assert series[1][1][4:] == [0.5, 0.5, None]


def test_a_report_without_per_pair_numbers_is_drawn_as_its_worst_pair():
    report = three_way_report()
    for layer in report["layers"]:
        del layer["pairs"]
    assert report_series(report) == [("worst pair", [layer["rel_diff"] for layer in report["layers"]])]
    assert "worst pair" in texts(svg_text(draw_verify_report(report)))


def test_the_plot_shows_the_tolerance_the_first_diverging_layer_and_every_layer():
    scene = draw_verify_report(three_way_report())
    lines = texts(svg_text(scene))
    assert set(NAMES) <= set(lines)
    assert {"keras / torch", "keras / naive_torch", "torch / naive_torch"} <= set(lines)
    assert "tolerance 0.0001" in lines and "first diverging layer: fc1" in lines
    assert "FAILED: first diverging layer fc1" in lines
    assert {"10⁻⁴", "10⁻⁷", "10⁰"} <= set(lines)  # a power of ten at every grid line, 10⁻⁷ to 10⁰ here
    assert overlapping_texts(scene) == []


def test_values_sit_on_a_log_axis_with_zero_below_and_non_finite_above():
    scene = draw_verify_report(three_way_report())
    grid = {text.text: text.y for text in scene.texts() if text.text.startswith("10") or text.text in ("0", "∞")}
    dots = [item for item in scene.items if isinstance(item, Dot)]
    assert len(dots) == len(NAMES) * len(PAIRS) + len(PAIRS)  # every value, and one in each legend entry
    plotted = dots[len(PAIRS) :]
    first_series = plotted[: len(NAMES)]
    assert first_series[0].hollow and first_series[0].y > grid["10⁻⁷"]  # 0, under the axis
    decade = grid["10⁻⁶"] - grid["10⁻⁵"]
    # 3e-7 is log10(3) = 0.477 of a decade above 10⁻⁷ (the labels sit 0.35 of a font below their grid line)
    assert first_series[1].y == pytest.approx(grid["10⁻⁷"] - 11 * 0.35 - 0.477 * decade, abs=0.1)
    naive = plotted[len(NAMES) : 2 * len(NAMES)]
    assert naive[-1].hollow and naive[-1].y < grid["10⁰"]  # NaN: above the axis
    lines = [item for item in scene.items if isinstance(item, Polyline) and item.width == 1.5]
    assert len(lines) == 3 and [len(line.points) for line in lines] == [6, 5, 5]  # the runs of positive values


def test_an_agreeing_report_says_ok():
    report = three_way_report()
    report.update(ok=True, first_divergent_layer=None, backends=["keras", "torch"])
    for layer in report["layers"]:
        layer["pairs"] = layer["pairs"][:1]
    lines = texts(svg_text(draw_verify_report(report)))
    assert "OK: every layer within tolerance" in lines
    assert not any(line.startswith("first diverging") for line in lines)
