"""What a weight file says about its own layout is held to how vggspec reads it: a contradiction is refused in
one line (Theano's flipped kernels, a channels-first model flattened in C,H,W order, a safetensors layout
vggspec does not read), a backend vggspec does not know is read with a warning, and what only describes the
file (Keras' keras_version, safetensors' format and source) passes."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest

from vggspec.errors import WeightsError
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.formats import read_bundle, write_bundle
from vggspec.weights.safetensors_file import LAYOUT

from conftest import run_vggspec
from weight_fixtures import as_bundle_layers, plan_layers, small_plan, small_spec_file, write_keras2_h5


def keras2_file(tmp_path, name="small.h5", model_weights=False, **attributes):
    """The small spec's Keras 2 file, its root's attributes (``backend``, ...) then set as given."""
    path = write_keras2_h5(tmp_path / name, plan_layers(small_plan()), model_weights=model_weights)
    with h5py.File(path, "a") as file:
        for holder in (file, file["model_weights"]) if model_weights else (file,):
            holder.attrs.update(attributes)
    return path


def refused(path) -> str:
    with pytest.raises(WeightsError) as error:
        read_bundle(path, small_plan())
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: expected "), message
    return message


def test_kernels_saved_by_theano_are_refused_in_one_line_by_convert(tmp_path):
    path = keras2_file(tmp_path, backend=b"theano")
    done = run_vggspec("convert", path, tmp_path / "out.pt", "--spec", small_spec_file(tmp_path))
    assert done.returncode == 2 and done.stdout == "" and not (tmp_path / "out.pt").exists()
    assert done.stderr.splitlines() == [
        f"error: {path}: expected kernels of a correlating backend (tensorflow, cntk, jax, torch, numpy, openvino), "
        "received backend 'theano', whose convolution kernels are flipped; load the file with Keras 2 on "
        "TensorFlow (its load_weights flips them) and save the weights again"
    ]
    assert "backend 'theano'" in refused(keras2_file(tmp_path, "model.h5", model_weights=True, backend=b"theano"))


@pytest.mark.parametrize("backend", [b"tensorflow", b"cntk", b"jax", b"torch"])
def test_correlating_backends_are_read_without_a_word(tmp_path, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_bundle(keras2_file(tmp_path, backend=backend), small_plan())


def test_a_backend_vggspec_does_not_know_is_read_with_a_warning(tmp_path):
    path = keras2_file(tmp_path, backend=b"mxnet")
    with pytest.warns(UserWarning) as caught:
        bundle = read_bundle(path, small_plan())
    assert bundle.total_params == small_plan().total_params
    assert [str(warning.message) for warning in caught] == [
        f"{path}: backend 'mxnet' is not a Keras backend vggspec knows; its kernels are read as TensorFlow's "
        "(HWIO, cross-correlation)"
    ]


def _model_config(conv: dict, flatten: dict) -> bytes:
    layers = [
        {"class_name": "Conv2D", "config": {"name": "block1_conv1", **conv}},
        {"class_name": "Flatten", "config": {"name": "flatten", **flatten}},
    ]
    return json.dumps({"class_name": "Sequential", "config": {"name": "small", "layers": layers}}).encode()


@pytest.mark.parametrize(
    "conv, flatten, flattened_chw",
    [
        ({"data_format": "channels_first"}, {}, True),  # Keras 2 before 2.1.5: Flatten kept the map's order
        ({"data_format": "channels_first"}, {"data_format": "channels_last"}, True),
        ({"dim_ordering": "th"}, {}, True),  # Keras 1
        ({"data_format": "channels_first"}, {"data_format": "channels_first"}, False),  # Flatten goes H,W,C first
        ({"data_format": "channels_last"}, {}, False),
    ],
)
def test_a_channels_first_model_flattened_in_chw_order_is_refused(tmp_path, conv, flatten, flattened_chw):
    path = keras2_file(tmp_path, model_weights=True)
    with h5py.File(path, "a") as file:
        file.attrs["model_config"] = _model_config(conv, flatten)
    if not flattened_chw:
        assert read_bundle(path, small_plan()).total_params == small_plan().total_params
        return
    assert refused(path) == (
        f"{path}: expected a channels-last model (vggspec reads the dense layer after the flatten in H,W,C "
        "order), received a model_config whose layer 'block1_conv1' is channels-first and whose Flatten keeps "
        "C,H,W order; save the weights of a channels-last copy of the model instead"
    )


def test_a_safetensors_layout_other_than_the_one_read_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    plan = small_plan()
    path = tmp_path / "small.safetensors"
    write_bundle(path, WeightBundle(as_bundle_layers(plan_layers(plan))))
    arrays = load_file(path)
    save_file(arrays, path, metadata={"format": "pt", "layout": LAYOUT})  # what vggspec writes, another framework
    assert read_bundle(path, plan).total_params == plan.total_params
    other = "torch: conv OIHW, dense (out, in)"
    save_file(arrays, path, metadata={"layout": other})
    assert refused(path) == f"{path}: expected metadata layout {LAYOUT!r} for keys LAYER/WEIGHT, received {other!r}"
    torch = pytest.importorskip("torch")
    write_bundle(tmp_path / "small.pt", WeightBundle(as_bundle_layers(plan_layers(plan))), plan)
    state = {key: value.numpy() for key, value in torch.load(tmp_path / "small.pt", weights_only=True).items()}
    save_file(state, path, metadata={"layout": LAYOUT})
    assert refused(path).startswith(
        f"{path}: expected torchvision's layout for its keys features.N and classifier.N, received metadata layout "
    )
    save_file(state, path, metadata={"format": "pt"})
    assert read_bundle(path, plan).total_params == plan.total_params
    assert np.array_equal(read_bundle(path, plan).layers["fc2"]["bias"], state["classifier.3.bias"])
