"""The spec language, its checks and the plan: exact parameter counts and shapes, no framework."""

from __future__ import annotations

import json
import re

import pytest

import vggspec
from vggspec.errors import SpecError
from vggspec.spec.shipped import shipped_names
from vggspec.spec.table import configuration_fields, load_table

from conftest import SPECS

# Trainable parameters at 224x224x3 and 1000 classes (torchvision's counts; FACTS.md).
TRAINABLE = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}
# Keras keeps each batch norm's moving mean and variance as non-trainable weights: 2 per channel.
CONV_CHANNELS = {
    "vgg11_bn": 2 * (64 + 128 + 256 * 2 + 512 * 4),
    "vgg13_bn": 2 * (64 * 2 + 128 * 2 + 256 * 2 + 512 * 4),
    "vgg16_bn": 2 * (64 * 2 + 128 * 2 + 256 * 3 + 512 * 6),
    "vgg19_bn": 2 * (64 * 2 + 128 * 2 + 256 * 4 + 512 * 8),
}

# keras.applications.VGG16 summary: (name, output shape, params)
KERAS_VGG16 = [
    ("input_layer", (224, 224, 3), 0),
    ("block1_conv1", (224, 224, 64), 1_792),
    ("block1_conv2", (224, 224, 64), 36_928),
    ("block1_pool", (112, 112, 64), 0),
    ("block2_conv1", (112, 112, 128), 73_856),
    ("block2_conv2", (112, 112, 128), 147_584),
    ("block2_pool", (56, 56, 128), 0),
    ("block3_conv1", (56, 56, 256), 295_168),
    ("block3_conv2", (56, 56, 256), 590_080),
    ("block3_conv3", (56, 56, 256), 590_080),
    ("block3_pool", (28, 28, 256), 0),
    ("block4_conv1", (28, 28, 512), 1_180_160),
    ("block4_conv2", (28, 28, 512), 2_359_808),
    ("block4_conv3", (28, 28, 512), 2_359_808),
    ("block4_pool", (14, 14, 512), 0),
    ("block5_conv1", (14, 14, 512), 2_359_808),
    ("block5_conv2", (14, 14, 512), 2_359_808),
    ("block5_conv3", (14, 14, 512), 2_359_808),
    ("block5_pool", (7, 7, 512), 0),
    ("flatten", (25088,), 0),
    ("fc1", (4096,), 102_764_544),
    ("fc2", (4096,), 16_781_312),
    ("predictions", (1000,), 4_097_000),
]


@pytest.mark.parametrize("name", sorted(TRAINABLE))
def test_parameter_counts_of_every_shipped_configuration(name):
    plan = vggspec.plan(name)
    assert plan.trainable_params == TRAINABLE[name]
    assert plan.non_trainable_params == CONV_CHANNELS.get(name, 0)
    assert plan.input_shape == (224, 224, 3)
    assert plan.output_shape == (1000,)


def test_every_shipped_name_is_listed_and_loads():
    names = shipped_names()
    assert set(TRAINABLE) <= set(names)
    for name in names:
        assert vggspec.load_spec(name).name


def test_vgg16_plan_equals_the_keras_summary():
    plan = vggspec.plan("vgg16")
    assert [(layer.name, layer.output_shape, layer.params) for layer in plan.layers] == KERAS_VGG16
    assert plan.total_params == 138_357_544
    assert plan.macs == 15_470_264_320  # torchvision's "15.47 GFLOPS"


def test_vgg16_without_top():
    spec = vggspec.spec_from_mapping({**vggspec.spec_to_mapping(vggspec.load_spec("vgg16")), "include_top": False})
    plan = vggspec.plan(spec)
    assert plan.total_params == 14_714_688
    assert plan.output_shape == (7, 7, 512)
    pooled = vggspec.plan(vggspec.spec_from_mapping({**vggspec.spec_to_mapping(spec), "pooling": "avg"}))
    assert pooled.output_shape == (512,) and pooled.layers[-1].name == "avg_pool"
    vgg19_notop = vggspec.spec_from_mapping({**vggspec.spec_to_mapping(vggspec.load_spec("E")), "include_top": False})
    assert vggspec.plan(vgg19_notop).total_params == 20_024_384


def test_default_spec_writes_out_the_table_column_d():
    assert [str(t) for t in vggspec.load_spec("vgg16").layers] == configuration_fields("D")["layers"]
    assert vggspec.load_spec("vgg16").preprocessing == "caffe"


def test_table_mirrors_the_paper():
    defaults, columns = load_table()
    assert list(columns) == ["A", "A-LRN", "B", "C", "D", "E"]
    weight_layers = {letter: sum(t.startswith(("conv", "FC")) for t in tokens) for letter, tokens in columns.items()}
    assert weight_layers == {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    assert columns["C"].count("conv1-256") == 1 and columns["C"].count("conv1-512") == 2
    assert columns["A-LRN"][:3] == ["conv3-64", "LRN", "maxpool"]
    assert all(tokens[-4:] == ["FC-4096", "FC-4096", "FC-1000", "soft-max"] for tokens in columns.values())
    assert defaults["input_shape"] == [224, 224, 3] and defaults["dropout"] == 0.5
    plan = vggspec.plan("A-LRN")
    assert [layer.name for layer in plan.layers[1:4]] == ["block1_conv1", "block1_lrn", "block1_pool"]
    assert plan.layer("block1_lrn").config() == {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}
    assert plan.layer("fc1_dropout").config() == {"rate": 0.5, "follows": "fc1"}


def test_configuration_c_has_one_by_one_convolutions():
    plan = vggspec.plan("C")
    assert plan.layer("block3_conv3").config()["kernel_size"] == 1
    assert plan.layer("block3_conv3").params == 256 * 256 + 256


def test_batch_norm_layers_and_names():
    plan = vggspec.plan("vgg16_bn")
    names = [layer.name for layer in plan.layers[1:5]]
    assert names == ["block1_conv1", "block1_conv1_bn", "block1_conv1_act", "block1_conv2"]
    assert plan.layer("block1_conv1").config()["activation"] is None
    bn = plan.layer("block1_conv1_bn")
    assert (bn.trainable_params, bn.non_trainable_params) == (128, 128)


def test_editable_fields(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(
        "name: small\nlayers: [conv5-8, conv1-8, maxpool, conv3-16, maxpool]\n"
        "input_shape: [64, 48, 1]\nclasses: 2\nfc: [32]\ndropout: 0.25\nactivation: elu\n"
        "classifier_activation: null\nbatch_norm: true\n"
    )
    plan = vggspec.plan(str(path))
    assert plan.layer("block1_conv1").params == 5 * 5 * 1 * 8 + 8
    assert plan.layer("block2_pool").output_shape == (16, 12, 16)
    assert plan.layer("fc1").params == 16 * 12 * 16 * 32 + 32
    assert plan.layer("predictions").config() == {
        "units": 2,
        "input_features": 32,
        "activation": None,
        "classifier": True,
        "reads_flattened": None,
    }
    assert plan.layer("fc1_dropout").config()["rate"] == 0.25
    assert plan.layer("block1_conv1_act").config() == {"activation": "elu"}


def test_spec_round_trips_through_a_mapping():
    for name in ("vgg16", "vgg19_bn", "A-LRN"):
        spec = vggspec.load_spec(name)
        again = vggspec.spec_from_mapping(vggspec.spec_to_mapping(spec))
        assert vggspec.plan(again) == vggspec.plan(spec)


def test_shipped_specs_name_their_schema_for_editors():
    for path in sorted(SPECS.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        schema = "table" if path.name == "vgg.yaml" else "spec"
        assert first == f"# yaml-language-server: $schema=schema/{schema}.schema.json", path
        assert (SPECS / "schema" / f"{schema}.schema.json").exists()


def test_all_problems_are_reported_with_positions(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("name: two\nlayers: [conv3-64, maxpol]\nclasses: 0\n")
    with pytest.raises(SpecError) as caught:
        vggspec.load_spec(str(path))
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{path}:2:20 $.layers[1]: expected a layer token in the paper's notation: convK-N (K×K kernel, "
        "N filters), LRN or maxpool, received 'maxpol'",
        f"{path}:3:10 $.classes: expected a number of classes ≥ 1, received 0",
    ]


def test_unknown_shipped_name_lists_the_names():
    with pytest.raises(SpecError, match=r"expected a spec file or a shipped name \(vgg11, .*received 'vgg17'"):
        vggspec.load_spec("vgg17")


def test_summary_table_matches_keras(cli):
    result = cli("summary", "vgg16")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"│ (\S+) \((\w+)\)\s+│ (\([^)]*\))\s+│\s+([\d,]+) │", result.stdout)
    assert [(name, shape, int(params.replace(",", ""))) for name, _, shape, params in rows] == [
        (name, "(None, " + ", ".join(map(str, shape)) + ")", params) for name, shape, params in KERAS_VGG16
    ]
    assert " Total params: 138,357,544 (527.79 MB)" in result.stdout
    assert " Trainable params: 138,357,544 (527.79 MB)" in result.stdout
    assert " Non-trainable params: 0 (0.00 B)" in result.stdout


def test_summary_json_and_markdown(cli):
    data = json.loads(cli("summary", "vgg16_bn", "--format", "json").stdout)
    assert (data["name"], data["total_params"], data["trainable_params"], data["non_trainable_params"]) == (
        "vgg16_bn",
        138_365_992 + 8_448,
        138_365_992,
        8_448,
    )
    assert data["layers"][-1]["config"] == {
        "units": 1000,
        "input_features": 4096,
        "activation": "softmax",
        "classifier": True,
        "reads_flattened": None,
    }
    assert data["layers"][1] == {
        "name": "block1_conv1",
        "type": "Conv2D",
        "output_shape": [None, 224, 224, 64],
        "params": 1_792,
        "trainable_params": 1_792,
        "non_trainable_params": 0,
        "config": {
            "filters": 64,
            "kernel_size": 3,
            "input_channels": 3,
            "activation": None,
        },
    }
    markdown = cli("summary", str(SPECS / "vgg19.yaml"), "--format", "markdown").stdout
    assert "| block5_conv4 (Conv2D) | (None, 14, 14, 512) | 2,359,808 |" in markdown
    assert "- Total params: 143,667,240 (548.05 MB)" in markdown


def test_list_and_validate_commands(cli):
    listing = cli("list")
    assert listing.returncode == 0
    assert re.search(r"^vgg16_bn\s+16 weight layers\s+138,365,992\s+8,448\s+batch norm", listing.stdout, re.M)
    assert re.search(r"^C\s+16 weight layers\s+133,638,952\s+0", listing.stdout, re.M)
    ok = cli("validate", "vgg16", str(SPECS / "vgg11_bn.yaml"), "A-LRN")
    assert ok.returncode == 0 and ok.stdout.count(": ok (") == 3


def test_python_dash_m_and_help(cli):
    assert cli("--version").stdout.startswith("vggspec ")
    assert "summary" in cli("--help").stdout
    assert cli("summary").returncode == 2  # argparse: missing SPEC


def test_import_leaves_frameworks_out():
    import subprocess
    import sys

    code = (
        "import sys, vggspec; vggspec.plan('vgg16'); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch', 'h5py', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_yaml_1_2_scalars(tmp_path):
    """YAML 1.2 core schema, as editors and JSON read it: 1e-4 is a number, 010 is ten, no/on are strings."""
    path = tmp_path / "yaml12.yaml"
    path.write_text(
        "name: no\nlayers: [conv3-8, LRN, maxpool]\ninput_shape: [032, 0x20, 3]\nclasses: 010\n"
        "lrn: {alpha: 1e-4, beta: 0.75, k: 2}\nfc: [8]\n"
    )
    spec = vggspec.load_spec(str(path))
    assert spec.name == "no"
    assert spec.input_shape == (32, 32, 3) and spec.classes == 10
    assert spec.lrn.alpha == 1e-4 and isinstance(spec.lrn.alpha, float)
    assert vggspec.plan(spec).layer("block1_lrn").config() == {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2}
