"""The plan a spec lowers to: exact parameter counts, shapes and names, and its summaries, no framework."""

from __future__ import annotations

import json
import re

import pytest

import vggspec

from conftest import SPECS

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


CONV_CHANNELS = {
    "vgg11_bn": 2 * (64 + 128 + 256 * 2 + 512 * 4),
    "vgg13_bn": 2 * (64 * 2 + 128 * 2 + 256 * 2 + 512 * 4),
    "vgg16_bn": 2 * (64 * 2 + 128 * 2 + 256 * 3 + 512 * 6),
    "vgg19_bn": 2 * (64 * 2 + 128 * 2 + 256 * 4 + 512 * 8),
}


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


@pytest.mark.parametrize(("name", "depth"), [("A", 11), ("A-LRN", 11), ("vgg16", 16), ("vgg19_bn", 19), ("small64", 6)])
def test_depth_counts_the_weight_layers_as_the_paper_does(name, depth):
    """Convolutions and dense layers (the paper's "16 weight layers"); batch norm, LRN and pools not."""
    assert vggspec.plan(name).depth == depth
