"""The README's pictures (docs/pictures/, made by `make pictures`) are what the commands draw now, and small."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import pytest

import vggspec
from vggspec.drawing.compare import align_plans, diff_text
from vggspec.drawing.network import draw_comparison, draw_plan
from vggspec.drawing.svg import svg_text

from conftest import REPO

PICTURES = REPO / "docs" / "pictures"
README = (REPO / "README.md").read_text(encoding="utf-8")
SVG = "{http://www.w3.org/2000/svg}"
MAX_BYTES = 200_000


@pytest.mark.parametrize(
    ("file", "draw"),
    [
        ("vgg16.svg", lambda: draw_plan(vggspec.plan("vgg16"))),
        ("C-vs-D.svg", lambda: draw_comparison(vggspec.plan("C"), vggspec.plan("D"))),
    ],
)
def test_the_readmes_drawings_are_what_draw_makes_now(file, draw):
    assert (PICTURES / file).read_text(encoding="utf-8") == svg_text(draw()), f"make pictures: {file} is out of date"


def test_the_readmes_diff_is_what_diff_prints_now():
    block = re.search(r"```\n\$ vggspec diff C D\n(.*?)```", README, re.DOTALL)
    assert block is not None
    before, after = vggspec.plan("C"), vggspec.plan("D")
    assert block.group(1) == diff_text(before, after, align_plans(before, after)) + "\n"


def test_every_picture_is_in_the_readme_and_small():
    files = sorted(path.name for path in PICTURES.iterdir())
    assert files == ["C-vs-D.svg", "verify-vgg16.svg", "vgg16.svg"]
    for name in files:
        assert f"](docs/pictures/{name})" in README
        assert (PICTURES / name).stat().st_size < MAX_BYTES, name


def test_the_verify_plot_names_every_layer_of_vgg16_and_every_pair():
    root = ElementTree.parse(PICTURES / "verify-vgg16.svg").getroot()
    lines = {element.text for element in root.iter(f"{SVG}text")}
    assert {layer.name for layer in vggspec.plan("vgg16").layers} <= lines
    assert {"keras / torch", "keras / onnx", "torch / onnx", "OK: every layer within tolerance"} <= lines
