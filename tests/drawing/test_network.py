"""The network drawn from its plan: every layer and the totals in the SVG, labels that never overlap, PNG sizes."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ElementTree

import pytest

import vggspec
from vggspec.drawing.network import draw_comparison, draw_plan
from vggspec.drawing.scene import Rect, Scene, Text, overlapping_texts, text_box
from vggspec.drawing.svg import svg_text
from vggspec.planner.summary import totals_lines

from conftest import SHIPPED_SPECS

SVG = "{http://www.w3.org/2000/svg}"
# batch norm after every convolution, A-LRN's LRN, no top but an average pooling
BN_LRN_NO_TOP = "name: bn_lrn_no_top\nconfiguration: A-LRN\nbatch_norm: true\ninclude_top: false\npooling: avg\n"


def svg_lines(svg: str) -> list[str]:
    """Every <text> of an SVG document, parsed as XML."""
    root = ElementTree.fromstring(svg.encode())
    assert root.tag == f"{SVG}svg"
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def words(lines: list[str]) -> set[str]:
    return {word for line in lines for word in line.split()}


@pytest.fixture
def bn_lrn_no_top(tmp_path):
    path = tmp_path / "bn_lrn_no_top.yaml"
    path.write_text(BN_LRN_NO_TOP)
    return vggspec.plan(path)


@pytest.mark.parametrize("name", [*SHIPPED_SPECS, "small64"])
def test_the_svg_names_every_layer_of_the_plan_and_its_totals(name):
    plan = vggspec.plan(name)
    lines = svg_lines(svg_text(draw_plan(plan)))
    assert {layer.name for layer in plan.layers} <= words(lines)
    for total in totals_lines(plan):  # "Total params: 138,357,544 (527.79 MB)", trainable, non-trainable
        assert total in lines
    assert f"Multiply-accumulates per image: {plan.macs:,}" in lines


def test_vgg16_shows_each_block_as_a_group_and_fc1s_share_of_the_parameters():
    plan = vggspec.plan("vgg16")
    lines = svg_lines(svg_text(draw_plan(plan)))
    titles = re.compile(r"input|block\d+|top")
    assert [line for line in lines if titles.fullmatch(line)][:7] == [  # then "input" in the legend
        "input",
        *(f"block{number}" for number in range(1, 6)),
        "top",
    ]
    assert plan.layer("fc1").params / plan.total_params == pytest.approx(0.7427, abs=1e-4)
    assert "74% of all parameters" in lines and "fc1 74%" in lines  # under fc1, and on the strip of parameters
    assert "4096 102,764,544" in lines and "224×224×64 1,792" in lines  # output shape and parameters
    assert lines[0] == "vgg16: 16 weight layers, input 224×224×3, 138,357,544 parameters"


def test_the_largest_layer_stands_out():
    scene = draw_plan(vggspec.plan("vgg16"))
    outlined = [
        item.tooltip for item in scene.items if isinstance(item, Rect) and item.tooltip and item.stroke_width > 2
    ]
    assert outlined == ["fc1 (Dense): (4096,), 102,764,544 parameters"]
    assert "most parameters" in [text.text for text in scene.texts()]  # in the legend


def test_box_height_follows_the_map_and_width_the_channels():
    scene = draw_plan(vggspec.plan("vgg19"))
    boxes = {
        item.tooltip.split()[0]: item for item in scene.items if isinstance(item, Rect) and "):" in (item.tooltip or "")
    }
    assert boxes["block1_conv1"].height > boxes["block2_conv1"].height > boxes["block5_conv1"].height
    assert boxes["block1_conv1"].width < boxes["block3_conv1"].width < boxes["block5_conv4"].width
    assert boxes["block5_conv4"].height == pytest.approx(12 * 14**0.5)  # √14 rows
    assert boxes["block5_conv4"].width == pytest.approx(2 * 512**0.5)  # √512 channels


@pytest.mark.parametrize("name", ["bn_lrn_no_top", "vgg19_bn", "small64"])
def test_no_two_labels_overlap(name, bn_lrn_no_top):
    plan = bn_lrn_no_top if name == "bn_lrn_no_top" else vggspec.plan(name)
    scene = draw_plan(plan)
    texts = scene.texts()
    assert len(texts) > len(plan.layers) * 2
    assert overlapping_texts(scene) == []
    for text in texts:  # and every label inside the picture
        left, top, right, bottom = text_box(text)
        assert left >= 0 and top >= 0 and right <= scene.width and bottom <= scene.height, text


def test_batch_norm_and_lrn_are_marked(bn_lrn_no_top):
    lines = svg_lines(svg_text(draw_plan(bn_lrn_no_top)))
    assert {"batch norm", "LRN", "activation", "global average pool"} <= set(lines)  # the legend
    assert {"block1_conv1_bn", "block1_conv1_act", "block1_lrn", "avg_pool"} <= words(lines)
    assert "pooling" in lines and "top" not in lines
    assert "Non-trainable params: 5,504 (21.50 KB)" in lines


def test_the_rendered_labels_of_the_png_do_not_overlap(bn_lrn_no_top):
    """matplotlib's own extents of every label (DejaVu Sans Mono, as laid out): apart, within the layout's."""
    pytest.importorskip("matplotlib")
    from vggspec.drawing.png import png_figure

    scene = draw_plan(bn_lrn_no_top)
    with png_figure(scene) as figure:
        renderer = figure.canvas.get_renderer()
        texts = figure.axes[0].texts
        extents = [text.get_window_extent(renderer) for text in texts]
    assert len(texts) == len(scene.texts())
    for i, first in enumerate(extents):
        for second in extents[i + 1 :]:
            assert not first.overlaps(second) or first.intersection(first, second).width < 0.5
    for drawn, planned in zip(extents, scene.texts()):  # pixels at the natural size: y up in matplotlib
        left, _, right, _ = text_box(planned)
        slack = 1 + 0.02 * (right - left)  # a glyph the font lacks (√) comes from a wider one
        assert left - slack <= drawn.x0 and drawn.x1 <= right + slack, planned.text


@pytest.mark.parametrize("width", [400, 1000, 2500])
def test_the_png_has_the_width_asked_for(width):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from vggspec.drawing.png import png_figure

    scene = draw_plan(vggspec.plan("vgg16"))
    buffer = io.BytesIO()
    with png_figure(scene, width) as figure:
        figure.savefig(buffer, format="png")
    assert Image.open(buffer).size == (width, round(scene.height * width / scene.width))


def test_the_svg_declares_its_size_and_keeps_the_scenes_coordinates():
    scene = draw_plan(vggspec.plan("vgg16"))
    root = ElementTree.fromstring(svg_text(scene, 800).encode())
    assert (root.get("width"), root.get("height")) == ("800", str(round(scene.height * 800 / scene.width)))
    assert [float(number) for number in root.get("viewBox").split()] == pytest.approx(
        [0, 0, scene.width, scene.height], abs=0.05
    )
    plain = ElementTree.fromstring(svg_text(scene).encode())
    assert plain.get("width") == str(round(scene.width))


def test_text_and_tooltips_are_escaped_in_the_svg():
    scene = Scene(100, 50, title="<&>")
    scene.add(Rect(0, 0, 5, 5, "red", tooltip='"<x & y>"'), Text(1, 20, 'a<b & c>"d'))
    root = ElementTree.fromstring(svg_text(scene).encode())
    assert svg_lines(svg_text(scene)) == ['a<b & c>"d']
    assert [element.text for element in root.iter(f"{SVG}title")] == ["<&>", '"<x & y>"']


def test_two_plans_are_aligned_and_what_differs_is_marked():
    before, after = vggspec.plan("C"), vggspec.plan("D")
    scene = draw_comparison(before, after)
    lines = svg_lines(svg_text(scene))
    assert "vgg_c → vgg_d: layers: 3 changed, 0 added, 0 removed, 22 the same" in lines
    assert "Total params: 133,638,952 → 138,357,544 (+4,718,592)" in lines
    assert "block3_conv3 1×1" in lines and "56×56×256 65,792" in lines and "56×56×256 590,080" in lines
    red = [item for item in scene.items if isinstance(item, Rect) and item.stroke == "#d62728" and item.tooltip]
    assert sorted(item.tooltip.split()[0] for item in red) == sorted(
        2 * ["block3_conv3", "block4_conv3", "block5_conv3"]
    )
    boxes = [item for item in scene.items if isinstance(item, Rect) and item.tooltip and "(Conv2D)" in item.tooltip]
    first, second = boxes[: len(boxes) // 2], boxes[len(boxes) // 2 :]
    assert [box.x for box in first] == [box.x for box in second]  # the same column, one above the other
    assert all(box.y < other.y for box, other in zip(first, second))
    assert overlapping_texts(scene) == []


def test_a_layer_only_in_one_plan_is_an_outline_in_the_other():
    scene = draw_comparison(vggspec.plan("D"), vggspec.plan("E"))
    lines = svg_lines(svg_text(scene))
    assert "vgg_d → vgg_e: layers: 0 changed, 3 added, 0 removed, 25 the same" in lines
    placeholders = [item for item in scene.items if isinstance(item, Rect) and item.fill == "none" and item.dashed]
    assert len(placeholders) == 3 and "only in the second" in lines
