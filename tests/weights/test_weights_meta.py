"""Weight files that say what they are: the metadata vggspec writes in every format, read back; torch still
loads its .pt strictly; `vggspec weights info`; convert carries what the source says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vggspec
from vggspec.errors import WeightsError
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.file_meta import read_meta
from vggspec.weights.formats import write_bundle
from vggspec.weights.meta import WeightsMeta, plan_digest

from weight_fixtures import SMALL, random_weights, small_plan, small_spec_file

FORMATS = ("a.h5", "b.weights.h5", "c.safetensors", "d.pt")
CLASSES = tuple(f"class {i}" for i in range(10))


@pytest.fixture(scope="module")
def written(module_tmp):
    """The small network's random weights written in every format with metadata (torch, named classes)."""
    folder = module_tmp.mktemp("meta")
    plan = small_plan()
    meta = WeightsMeta.for_plan(plan, preprocessing="torch", labels=CLASSES, source="x.h5", origin="a test")
    bundle = WeightBundle(random_weights(plan))
    for name in FORMATS:
        write_bundle(folder / name, bundle, plan, meta=meta)
    return folder, plan, meta, bundle


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_vggspec_writes_carries_the_metadata(name, written):
    folder, plan, meta, _ = written
    read = read_meta(folder / name)
    assert read == meta
    assert read.spec == "small" and read.input_shape == (32, 32, 3) and read.labels == CLASSES
    assert read.fits(plan) and not read.fits(small_plan(fc=[16, 13]))


def test_a_file_without_metadata_says_nothing(tmp_path):
    plan = small_plan()
    write_bundle(tmp_path / "plain.safetensors", WeightBundle(random_weights(plan)), plan)
    assert read_meta(tmp_path / "plain.safetensors") is None


def test_the_pt_file_still_loads_strictly_in_torch(written):
    import torch

    folder, plan, _, bundle = written
    model = vggspec.build(vggspec.spec_from_mapping(SMALL), "torch")
    state = torch.load(folder / "d.pt", weights_only=True)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # the arrays are the bundle's, in torch's layout
    np.testing.assert_array_equal(
        model.features[0].weight.detach().numpy(), bundle.layers["block1_conv1"]["kernel"].transpose(3, 2, 0, 1)
    )


def test_the_plan_digest_names_the_arrays_not_the_rest():
    assert plan_digest(small_plan()) == plan_digest(small_plan(dropout=0.5, preprocessing="tf"))
    assert plan_digest(small_plan()) != plan_digest(small_plan(classes=9))
    assert plan_digest(vggspec.plan("vgg16")) != plan_digest(vggspec.plan("vgg16_bn"))


def test_damaged_metadata_is_one_error_naming_the_field(tmp_path):
    plan = small_plan()
    bundle = WeightBundle(random_weights(plan))
    good = json.loads(WeightsMeta.for_plan(plan, preprocessing="torch").to_json())
    for change, field in [({"preprocessing": "bgr"}, "preprocessing"), ({"input_shape": [32, 32]}, "input_shape")]:
        write_bundle(tmp_path / "m.safetensors", bundle, plan)
        text = json.dumps({**good, **change})
        _rewrite_safetensors_meta(tmp_path / "m.safetensors", text)
        with pytest.raises(WeightsError, match=rf"m\.safetensors: metadata vggspec\.{field}: expected"):
            read_meta(tmp_path / "m.safetensors")


def _rewrite_safetensors_meta(path, text: str) -> None:
    from safetensors.numpy import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"vggspec": text})


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
FIELDS = ("spec", "plan_digest", "input_shape", "preprocessing", "labels", "source", "origin", "vggspec_version")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=5), st.sampled_from(FIELDS), JSON_VALUES)
def test_any_json_a_file_declares_is_read_or_refused_as_weights_error(fields, key, value):
    good = json.loads(WeightsMeta.for_plan(small_plan(), preprocessing="caffe").to_json())
    for text in (json.dumps({**good, **fields}), json.dumps({**good, key: value}), json.dumps(value)):
        try:
            meta = WeightsMeta.from_json(text, "f.safetensors")
        except WeightsError as error:
            assert str(error).startswith("f.safetensors: metadata") and "\n" not in str(error)
        else:  # what is read is what a writer would write again
            assert WeightsMeta.from_json(meta.to_json(), "again") == meta


def test_weights_info_says_what_a_file_is(cli, written, tmp_path):
    folder, _, meta, _ = written
    result = cli("weights", "info", folder / "d.pt", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format"] == "PyTorch state dict" and info["arrays"] == 12 and info["parameters"] == 9_098
    assert info["meta"]["preprocessing"] == "torch" and info["meta"]["labels"] == list(CLASSES)
    assert info["meta"]["plan_digest"] == meta.plan_digest
    spec = small_spec_file(tmp_path)
    text = cli("weights", "info", folder / "a.h5", "--spec", spec)
    assert text.returncode == 0, text.stderr
    assert "parameters     9,098" in text.stdout and "preprocessing  torch" in text.stdout
    assert f"plan digest {meta.plan_digest} (fits small)" in text.stdout


def test_convert_carries_what_the_source_says_and_its_digest(cli, written, tmp_path):
    from vggspec.fileio import file_digest

    folder, _, meta, _ = written
    spec = small_spec_file(tmp_path)
    result = cli("convert", folder / "c.safetensors", tmp_path / "out.pt", "--spec", spec)
    assert result.returncode == 0, result.stderr
    assert "preprocessing torch" in result.stdout
    read = read_meta(tmp_path / "out.pt")
    assert read.preprocessing == "torch" and read.labels == CLASSES and read.origin == "a test"
    assert read.source == "c.safetensors" and read.source_sha256 == file_digest(folder / "c.safetensors", "sha256")
    # reversed input channels: the source's preprocessing no longer holds, and is not claimed
    swapped = cli("convert", folder / "c.safetensors", tmp_path / "sw.h5", "--spec", spec, "--swap-rgb-bgr")
    assert swapped.returncode == 0, swapped.stderr
    assert read_meta(tmp_path / "sw.h5").preprocessing is None
