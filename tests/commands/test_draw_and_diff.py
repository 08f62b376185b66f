"""vggspec draw, vggspec diff and verify --plot from the command line: what they write and print, their exit
status, and bad input refused on one line with nothing written."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest
from PIL import Image

import vggspec

from cli_cases import files_under, one_line, tiny_spec

SVG = "{http://www.w3.org/2000/svg}"
C_VS_D = """\
--- vgg_c: 16 weight layers, 25 layers, 133,638,952 parameters
+++ vgg_d: 16 weight layers, 25 layers, 138,357,544 parameters
~ block3_conv3 (Conv2D)  (56, 56, 256)  kernel_size 1 → 3; params 65,792 → 590,080 (+524,288)
~ block4_conv3 (Conv2D)  (28, 28, 512)  kernel_size 1 → 3; params 262,656 → 2,359,808 (+2,097,152)
~ block5_conv3 (Conv2D)  (14, 14, 512)  kernel_size 1 → 3; params 262,656 → 2,359,808 (+2,097,152)

layers: 3 changed, 0 added, 0 removed, 22 the same
Total params: 133,638,952 → 138,357,544 (+4,718,592)
Trainable params: 133,638,952 → 138,357,544 (+4,718,592)
Non-trainable params: 0 → 0
Multiply-accumulates per image: 11,770,888,192 → 15,470,264,320 (+3,699,376,128)
"""


def svg_texts(path) -> list[str]:
    root = ElementTree.parse(path).getroot()
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_diff_of_c_and_d_lists_the_three_changed_convolutions(cli):
    result = cli("diff", "C", "D")
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == C_VS_D


def test_diff_of_a_spec_with_itself_says_so_and_exits_0(cli):
    result = cli("diff", "vgg16", "vgg16")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "vgg16 and vgg16 are the same plan: 16 weight layers, 23 layers, 138,357,544 parameters\n"


def test_diff_of_specs_that_differ_only_in_dropout_exits_1(cli):
    result = cli("diff", "vgg19", "E")
    assert result.returncode == 1, result.stderr
    assert "+ fc1_dropout (Dropout)  (4096)  no params" in result.stdout.splitlines()
    assert "layers: 0 changed, 2 added, 0 removed, 26 the same" in result.stdout


def test_diff_refuses_an_unknown_spec(cli):
    assert one_line(cli("diff", "C", "Z")).startswith("error: Z $: expected a spec file or a shipped name")


def test_draw_writes_an_svg_of_every_layer(cli, tmp_path):
    out = tmp_path / "vgg16.svg"
    result = cli("draw", "vgg16", "--out", out)
    assert result.returncode == 0, result.stderr
    root = ElementTree.parse(out).getroot()
    width, height = int(root.get("width")), int(root.get("height"))
    assert result.stdout == f"{out}: vgg16, {width}×{height} pixels\n"
    words = {word for line in svg_texts(out) for word in line.split()}
    assert {layer.name for layer in vggspec.plan("vgg16").layers} <= words


def test_draw_writes_a_png_of_the_width_asked_for(cli, tmp_path):
    pytest.importorskip("matplotlib")
    svg, png = tmp_path / "cd.svg", tmp_path / "cd.png"
    assert cli("draw", "C", "D", "--out", svg, "--width", "700").returncode == 0
    result = cli("draw", "C", "D", "--out", png, "--width", "700")
    assert result.returncode == 0, result.stderr
    root = ElementTree.parse(svg).getroot()
    assert Image.open(png).size == (700, int(root.get("height")))  # the size the SVG declares too
    assert result.stdout == f"{png}: vgg_c and vgg_d, 700×{root.get('height')} pixels\n"
    assert "vgg_c → vgg_d: layers: 3 changed, 0 added, 0 removed, 22 the same" in svg_texts(svg)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nope", "--out", "{dir}/x.svg"], "error: nope $: expected a spec file or a shipped name"),
        (["vgg16", "nope", "--out", "{dir}/x.svg"], "error: nope $: expected a spec file or a shipped name"),
        (["vgg16", "--out", "{dir}/x.pdf"], "error: --out {dir}/x.pdf: expected a file name ending in .svg or .png, "),
        (["vgg16", "--out", "{dir}/x"], "error: --out {dir}/x: expected a file name ending in .svg or .png, received "),
        (["vgg16", "--out", "{dir}/file/x.svg"], "error: --out {dir}/file/x.svg: expected a writable destination"),
        (["vgg16", "--out", "{dir}/folder.svg"], "error: --out {dir}/folder.svg: expected a file to write, received"),
        (["vgg16", "--out", "{dir}/x.svg", "--width", "99"], "error: --width: expected 100 to 10,000 pixels"),
    ],
    ids=["unknown spec", "unknown second spec", "pdf", "no extension", "under a file", "a folder", "too narrow"],
)
def test_draw_refuses_bad_input_on_one_line_and_writes_nothing(cli, tmp_path, arguments, message):
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "folder.svg").mkdir()
    before = files_under(tmp_path)
    result = cli("draw", *[argument.format(dir=tmp_path) for argument in arguments])
    assert one_line(result).startswith(message.format(dir=tmp_path))
    assert files_under(tmp_path) == before and result.stdout == ""


def test_verify_refuses_a_plot_it_cannot_write_before_any_work(cli, tmp_path):
    result = cli("verify", tiny_spec(tmp_path), "--backends", "torch,onnx", "--plot", tmp_path / "plot.jpg")
    assert one_line(result) == (
        f"error: --plot {tmp_path}/plot.jpg: expected a file name ending in .svg or .png, received '.jpg'"
    )
    assert result.seconds < 5 and not (tmp_path / "plot.jpg").exists()


def test_verify_plots_each_pair_of_three_backends(cli, tmp_path):
    """The report's JSON holds every pair's difference at every layer; the plot draws one line per pair."""
    pytest.importorskip("keras")
    pytest.importorskip("onnxruntime")
    spec, svg = tiny_spec(tmp_path), tmp_path / "plot.svg"
    result = cli("verify", spec, "--backends", "keras,torch,onnx", "--plot", svg, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for layer in report["layers"]:
        assert [entry["pair"] for entry in layer["pairs"]] == [["keras", "torch"], ["keras", "onnx"], ["torch", "onnx"]]
        worst = max(layer["pairs"], key=lambda entry: entry["rel_diff"])
        assert layer["rel_diff"] == worst["rel_diff"] and layer["max_abs_diff"] in [
            entry["max_abs_diff"] for entry in layer["pairs"]
        ]
    lines = svg_texts(svg)
    assert {"keras / torch", "keras / onnx", "torch / onnx", "tolerance 0.0001"} <= set(lines)
    assert {layer["name"] for layer in report["layers"]} <= set(lines)
    assert "OK: every layer within tolerance" in lines


def test_verify_plots_a_png(cli, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("onnxruntime")
    png = tmp_path / "plot.png"
    result = cli("verify", tiny_spec(tmp_path), "--backends", "torch,onnx", "--plot", png)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "OK: the backends agree on every layer and on the parameter counts"
    width, height = Image.open(png).size
    assert 500 < width < 1000 and 400 < height < 800
