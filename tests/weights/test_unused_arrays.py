"""What a weight file holds that the spec does not use is named in one warning line, never passed over in
silence: an extra key of a .pt, a dataset no weight_names lists, an unknown safetensors tensor, a whole
network's head read for a spec without top. A feature extractor's file may hold the layers past its
deepest output: those go unnamed."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

import vggspec
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.formats import read_bundle, write_bundle

from conftest import run_vggspec
from weight_fixtures import SMALL, as_bundle_layers, plan_layers, small_plan, small_spec_file, write_keras2_h5

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")


def small_file(tmp_path, name: str, plan=None):
    """The small spec's arrays written by vggspec as ``name`` (its suffix picks the format)."""
    plan = plan or small_plan()
    path = tmp_path / name
    write_bundle(path, WeightBundle(as_bundle_layers(plan_layers(plan))), plan)
    return path


def warning_lines(done) -> list[str]:
    """The ``warning:`` lines of a command that succeeded."""
    assert done.returncode == 0, done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("warning:")]


def build_warnings(*args, **options) -> list[str]:
    """The UserWarnings of ``vggspec.build(*args, **options)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vggspec.build(*args, **options)
    return [str(warning.message) for warning in caught if issubclass(warning.category, UserWarning)]


def test_an_extra_key_of_a_pt_is_named_by_convert_and_build(tmp_path):
    path = small_file(tmp_path, "small.pt")
    state = torch.load(path, weights_only=True)
    torch.save({**state, "extra.weight": torch.zeros(3)}, path)
    spec = small_spec_file(tmp_path)
    expected = f"{path}: 1 array in the file is not used (no layer of small reads it): extra.weight"
    assert warning_lines(run_vggspec("convert", path, tmp_path / "out.safetensors", "--spec", spec)) == [
        f"warning: {expected}"
    ]
    assert build_warnings(vggspec.spec_from_mapping(SMALL), backend="torch", weights=path) == [expected]


def test_an_extra_dataset_in_an_h5_layer_group_is_named(tmp_path):
    path = write_keras2_h5(tmp_path / "small.h5", plan_layers(small_plan()))
    with h5py.File(path, "a") as file:
        file["block1_conv1"].create_dataset("extra", data=np.zeros(3, np.float32))
        file.create_group("notes").create_dataset("lr", data=np.float32(0.1))  # a group layer_names does not list
    fitted = read_bundle(path, small_plan())
    assert fitted.unused == ("block1_conv1/extra", "notes/lr")
    lines = warning_lines(run_vggspec("convert", path, tmp_path / "out.pt", "--spec", small_spec_file(tmp_path)))
    assert lines == [
        f"warning: {path}: 2 arrays in the file are not used (no layer of small reads them): block1_conv1/extra, "
        "notes/lr"
    ]


def test_an_unknown_tensor_of_a_safetensors_file_is_named(tmp_path):
    canonical = small_file(tmp_path, "small.safetensors")
    arrays = safetensors_numpy.load_file(canonical)
    safetensors_numpy.save_file({**arrays, "block1_conv1/extra": np.zeros(2, np.float32)}, canonical)
    assert read_bundle(canonical, small_plan()).unused == ("block1_conv1/extra",)
    # torchvision's keys (as the hubs publish them), with one key of no module of the plan
    hub = tmp_path / "hub.safetensors"
    state = torch.load(small_file(tmp_path, "small.pt"), weights_only=True)
    safetensors_numpy.save_file({**{k: v.numpy() for k, v in state.items()}, "extra.weight": np.zeros(2)}, hub)
    assert read_bundle(hub, small_plan()).unused == ("extra.weight",)
    lines = warning_lines(run_vggspec("convert", hub, tmp_path / "out.h5", "--spec", small_spec_file(tmp_path)))
    assert lines == [f"warning: {hub}: 1 array in the file is not used (no layer of small reads it): extra.weight"]


def test_a_whole_file_read_for_a_spec_without_top_names_the_head_once(tmp_path):
    """Useful to know (the file's classifier is dropped), and said once, with the first few names and a count."""
    notop = small_spec_file(tmp_path, name="small_notop", include_top=False)
    for name in ("small.h5", "small.safetensors", "small.weights.h5", "small.pt"):
        path = small_file(tmp_path, name)
        lines = warning_lines(run_vggspec("convert", path, tmp_path / "notop.safetensors", "--spec", notop))
        names = {
            "small.pt": "classifier.0.weight, classifier.0.bias, classifier.3.weight, classifier.3.bias, "
            "classifier.6.weight",
            "small.weights.h5": "layers/dense/vars/0, layers/dense/vars/1, layers/dense_1/vars/0, "
            "layers/dense_1/vars/1, layers/dense_2/vars/0",
        }.get(name, "fc1/kernel, fc1/bias, fc2/kernel, fc2/bias, predictions/kernel")
        assert lines == [
            f"warning: {path}: 6 arrays in the file are not used (no layer of small_notop reads them): "
            f"{names} and 1 more"
        ], name


def test_every_array_used_says_nothing(tmp_path):
    for name in ("small.h5", "small.safetensors", "small.weights.h5", "small.pt"):
        path = small_file(tmp_path, name)
        assert read_bundle(path, small_plan()).unused == ()
        assert build_warnings(vggspec.spec_from_mapping(SMALL), "torch", weights=path) == []


def test_a_feature_extractor_names_only_what_no_layer_of_the_whole_spec_reads(tmp_path):
    spec = vggspec.spec_from_mapping(SMALL)
    for name in ("small.h5", "small.safetensors", "small.weights.h5", "small.pt"):
        path = small_file(tmp_path, name)
        for outputs in (["block1_conv2"], ["input_layer"], ["fc1"]):
            assert build_warnings(spec, backend="torch", weights=path, outputs=outputs) == [], (name, outputs)
    state = torch.load(tmp_path / "small.pt", weights_only=True)
    torch.save({**state, "extra.weight": torch.zeros(3)}, tmp_path / "extra.pt")
    extra = tmp_path / "extra.pt"
    assert build_warnings(spec, "torch", weights=extra, outputs=["block1_conv2"]) == [
        f"{extra}: 1 array in the file is not used (no layer of small reads it): extra.weight"
    ]


def test_a_checkpoints_second_state_dict_is_named_and_its_training_state_is_not(tmp_path):
    """timm's train script saves the EMA weights beside the model's: vggspec reads ``state_dict`` and says the
    other was not read; the epoch, the optimizer and the arguments are the run's, not the network's."""
    state = torch.load(small_file(tmp_path, "small.pt"), weights_only=True)
    path = tmp_path / "checkpoint.pth"
    optimizer = {"state": {}, "param_groups": [{"lr": 0.1}]}
    torch.save({"epoch": 3, "state_dict": state, "optimizer": optimizer, "state_dict_ema": dict(state)}, path)
    assert read_bundle(path, small_plan()).unused == (f"state_dict_ema (a second state dict, {len(state)} tensors)",)
