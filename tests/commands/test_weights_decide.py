"""The weights decide the preprocessing; a fine-tuning run's folder is a model; a feature extractor reads a whole
network's file. Through the command line, as users meet them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import vggspec
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.formats import write_bundle
from vggspec.weights.meta import WeightsMeta

from cli_cases import ONE_THREAD, one_line, tiny_spec
from image_sets import CLASSES
from weight_fixtures import random_weights

TINY_CLASSES = CLASSES  # the image set's class folders


@pytest.fixture(scope="module")
def torch_weights(module_tmp):
    """The tiny spec's random weights as a .pt that says it expects "torch" preprocessing and names its classes."""
    folder = module_tmp.mktemp("decide")
    plan = vggspec.plan(tiny_spec(folder, preprocessing="torch"))
    path = folder / "tiny.pt"
    meta = WeightsMeta.for_plan(plan, preprocessing="torch", labels=TINY_CLASSES)
    write_bundle(path, WeightBundle(random_weights(plan, seed=3, scale=0.02)), plan, meta=meta)
    return path


def scores(result) -> list[float]:
    assert result.returncode == 0, result.stderr
    rows = next(iter(json.loads(result.stdout).values()))
    return [row["score"] for row in sorted(rows, key=lambda row: row["index"])]


@pytest.mark.slow
def test_a_spec_that_disagrees_with_the_weights_is_refused_naming_both(cli, torch_weights, tmp_path, tiny_image_set):
    image = next((tiny_image_set / "val").rglob("*.jpg"))
    caffe_spec = tiny_spec(tmp_path, preprocessing="caffe")
    line = one_line(cli("predict", caffe_spec, image, "--weights", torch_weights, env=ONE_THREAD))
    assert "the weights" in line and "tiny.pt expect 'torch' preprocessing" in line
    assert "the spec tiny says 'caffe'" in line and "choose one with --preprocessing" in line
    # the spec that agrees: the weights' preprocessing, said in the header, and the class names they carry
    agreeing_spec = tiny_spec(tmp_path, preprocessing="torch", name="agrees")
    agreeing = cli("predict", agreeing_spec, image, "--weights", torch_weights, env=ONE_THREAD)
    assert agreeing.returncode == 0, agreeing.stderr
    assert agreeing.stdout.splitlines()[0] == "agrees: preprocessing torch: from the weights " + str(torch_weights)
    assert "circles" in agreeing.stdout and "stripes" in agreeing.stdout
    # a choice is what it says: "caffe" chosen gives other scores than the weights' own "torch"
    chosen = cli("predict", caffe_spec, image, "--weights", torch_weights, "--preprocessing", "caffe", "--json")
    own = cli("predict", agreeing_spec, image, "--weights", torch_weights, "--json", env=ONE_THREAD)
    assert "preprocessing caffe: as asked" in chosen.stderr
    assert np.abs(np.subtract(scores(own), scores(chosen))).max() > 1e-3


def test_weights_that_say_nothing_use_the_spec_and_the_header_says_so(cli, tmp_path, tiny_image_set):
    spec = tiny_spec(tmp_path, preprocessing="tf")
    plan = vggspec.plan(spec)
    write_bundle(tmp_path / "plain.h5", WeightBundle(random_weights(plan)), plan)
    image = next((tiny_image_set / "val").rglob("*.jpg"))
    result = cli("features", spec, image, "--layers", "block1_conv1", "--weights", tmp_path / "plain.h5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == f"preprocessing tf: the spec's ({tmp_path / 'plain.h5'} does not say)"


@pytest.mark.slow
def test_a_run_folder_is_a_model(cli, tmp_path, tiny_image_set):
    run = tmp_path / "run"
    spec = tiny_spec(tmp_path, preprocessing="tf")
    trained = cli(
        "finetune", spec, "--data", tiny_image_set, "--epochs", 1, "--batch-size", 8, "--workers", 0,
        "--backend", "torch", "--out", run, env=ONE_THREAD,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "tiny: preprocessing tf: the spec's (no weights)" in trained.stdout.splitlines()  # in the summary
    images = sorted((tiny_image_set / "val").rglob("*.jpg"))
    by_run = cli("predict", run, *images, "--json", env=ONE_THREAD)
    by_hand = cli(
        "predict", spec, *images, "--weights", run / "best.pt", "--labels", ",".join(TINY_CLASSES), "--json",
        env=ONE_THREAD,
    )  # fmt: skip
    assert by_run.returncode == 0, by_run.stderr
    assert json.loads(by_run.stdout) == json.loads(by_hand.stdout)  # spec, checkpoint, labels from run.json
    assert {row["label"] for rows in json.loads(by_run.stdout).values() for row in rows} == set(TINY_CLASSES)
    features = cli("features", run, images[0], "--layers", "block2_conv1", "--json", env=ONE_THREAD)
    assert features.returncode == 0, features.stderr
    assert json.loads(features.stdout)["layers"][0]["shape"] == [1, 16, 16, 8]
    assert json.loads(features.stdout)["preprocessing"] == "tf"


WIDE_HEAD = (
    "name: widehead\nlayers: [conv3-8, maxpool, conv3-8, maxpool]\ninput_shape: [32, 32, 3]\n"
    "fc: [4096, 4096]\nclasses: 10\n"
)


def test_a_feature_extractor_reads_the_whole_networks_file(cli, tmp_path, tiny_image_set):
    """A whole network's .pt (77 MB: the head is most of it) serves an extractor of block1_conv1, whose own
    parameters (224) would allow a file of 64 MiB: the size limit is the file's network's."""
    import torch

    spec = tmp_path / "widehead.yaml"
    spec.write_text(WIDE_HEAD)
    plan = vggspec.plan(spec)
    weights = random_weights(plan, seed=5, scale=0.05)
    write_bundle(tmp_path / "whole.pt", WeightBundle(weights), plan)
    assert (tmp_path / "whole.pt").stat().st_size > 70e6
    image = next((tiny_image_set / "val").rglob("*.jpg"))
    result = cli(
        "features", spec, image, "--layers", "block1_conv1", "--backend", "torch", "--weights", tmp_path / "whole.pt",
        "--out", tmp_path / "f.npz", env=ONE_THREAD,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # the layers past the cut are expected, not named as unused
    received = np.load(tmp_path / "f.npz")["block1_conv1"]
    # the reference: torch's own convolution on the same kernel and image, as vggspec preprocesses it
    from vggspec.images import load_images
    from vggspec.preprocessing import preprocess

    pixels = preprocess(load_images([image], (32, 32), 3), "caffe")
    kernel = torch.from_numpy(weights["block1_conv1"]["kernel"].transpose(3, 2, 0, 1).copy())
    bias = torch.from_numpy(weights["block1_conv1"]["bias"])
    expected = torch.relu(
        torch.nn.functional.conv2d(torch.from_numpy(pixels).permute(0, 3, 1, 2), kernel, bias, padding=1)
    )
    np.testing.assert_allclose(received, expected.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-4)


def test_the_choice_of_preprocessing_in_the_library(torch_weights, tmp_path):
    from vggspec.errors import VggspecError
    from vggspec.model_source import model_source

    agreeing = model_source(tiny_spec(tmp_path, preprocessing="torch"), torch_weights)
    assert agreeing.spec.preprocessing == "torch" and agreeing.labels == TINY_CLASSES
    assert agreeing.note == f"preprocessing torch: from the weights {torch_weights}"
    with pytest.raises(VggspecError, match="expect 'torch' preprocessing, the spec tiny says 'tf'") as refused:
        model_source(tiny_spec(tmp_path, preprocessing="tf"), torch_weights)
    assert refused.value.setting == "preprocessing"
    chosen = model_source(tiny_spec(tmp_path, preprocessing="tf"), torch_weights, preprocessing="tf")
    assert chosen.spec.preprocessing == "tf" and chosen.note == "preprocessing tf: as asked"
    assert model_source(tiny_spec(tmp_path, preprocessing="tf")).note == "preprocessing tf: the spec's (no weights)"


def test_layers_past_the_cut_are_checked_on_metadata_and_never_read(tmp_path):
    """A whole file whose head does not fit the spec still serves block1_conv1, and says so: a warning per layer."""
    spec = tmp_path / "widehead.yaml"
    spec.write_text(WIDE_HEAD)
    other = vggspec.plan(vggspec.spec_from_mapping({**yaml.safe_load(WIDE_HEAD), "fc": [64, 64]}))
    write_bundle(tmp_path / "other.safetensors", WeightBundle(random_weights(other, seed=2)), other)
    with pytest.warns(UserWarning) as caught:
        model = vggspec.build(spec, "numpy", weights=tmp_path / "other.safetensors", outputs=["block1_conv1"])
    lines = [str(warning.message) for warning in caught]
    assert [line.split(": layer ")[1].split(" (")[0] for line in lines] == ["fc1", "fc2", "predictions"]
    assert all("(past the layers asked for): expected kernel of shape" in line for line in lines)
    assert model is not None
