"""``vggspec convert``: every format to every other, bit for bit; bad files refused with exit 2 and nothing written."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from vggspec.weights.formats import read_bundle

from conftest import run_in_own_session, run_vggspec
from weight_fixtures import (
    as_bundle_layers,
    assert_same_arrays,
    keras_vgg16_layers,
    plan_layers,
    small_plan,
    small_spec_file,
    write_keras1_h5,
)

SMALL_PARAMS = 3 * 3 * 3 * 4 + 4 + 3 * 3 * 4 * 4 + 4 + 3 * 3 * 4 * 8 + 8 + 512 * 16 + 16 + 16 * 12 + 12 + 12 * 10 + 10


@pytest.fixture
def small(tmp_path):
    """(spec file, Keras 1 .h5 of the small spec, its arrays)."""
    plan = small_plan()
    assert plan.total_params == SMALL_PARAMS
    layers = plan_layers(plan)
    return small_spec_file(tmp_path), write_keras1_h5(tmp_path / "small.h5", layers), as_bundle_layers(layers)


def convert(source, destination, *options):
    return run_vggspec("convert", source, destination, *options)


def test_every_format_to_every_other_is_bit_identical(small, tmp_path):
    spec, source, expected = small
    chain = ["small.pt", "small_k1.h5", "small.safetensors", "small.weights.h5", "small.pth", "small_k2.hdf5"]
    formats = [
        "PyTorch state dict",
        "Keras 1 HDF5 weights",
        "safetensors",
        "Keras 3 .weights.h5",
        "PyTorch state dict",
        "Keras 2 HDF5 weights",
    ]
    previous = source
    for name, written in zip(chain, formats):
        options = ["--keras-version", "1"] if name.endswith("_k1.h5") else []
        done = convert(previous, tmp_path / name, "--spec", spec, *options)
        assert done.returncode == 0, done.stderr
        (line,) = done.stdout.splitlines()
        assert line.startswith(f"{tmp_path / name}: {written} from {previous} (")
        assert f", 6 layers, {SMALL_PARAMS:,} parameters, " in line and line.endswith(" s")
        assert_same_arrays(expected, read_bundle(tmp_path / name, small_plan()).layers)
        previous = tmp_path / name
    assert "Traceback" not in done.stderr and "layer" in done.stderr  # the tqdm bar, on stderr


def test_swap_rgb_bgr_reverses_only_the_first_convolution(small, tmp_path):
    spec, source, expected = small
    assert convert(source, tmp_path / "bgr.safetensors", "--spec", spec, "--swap-rgb-bgr").returncode == 0
    swapped = read_bundle(tmp_path / "bgr.safetensors").layers
    np.testing.assert_array_equal(swapped["block1_conv1"]["kernel"], expected["block1_conv1"]["kernel"][:, :, ::-1, :])
    np.testing.assert_array_equal(
        swapped["block1_conv1"]["kernel"][:, :, 0, :], expected["block1_conv1"]["kernel"][:, :, 2, :]
    )
    for layer in ("block1_conv2", "block2_conv1", "fc1", "predictions"):
        assert_same_arrays({layer: expected[layer]}, {layer: swapped[layer]})
    done = convert(tmp_path / "bgr.safetensors", tmp_path / "rgb.h5", "--spec", spec, "--swap-rgb-bgr")
    assert "input channels reversed (RGB <-> BGR)" in done.stdout
    assert_same_arrays(expected, read_bundle(tmp_path / "rgb.h5").layers)


@pytest.mark.slow  # full size: 553 MB written, read and written again
def test_vgg16_with_the_default_spec(tmp_path):
    source = write_keras1_h5(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5", keras_vgg16_layers())
    done = convert(source, tmp_path / "vgg16.safetensors")
    assert done.returncode == 0, done.stderr
    assert ": safetensors from " in done.stdout
    assert "(Keras 1 HDF5 weights), 16 layers, 138,357,544 parameters" in done.stdout
    assert_same_arrays(as_bundle_layers(keras_vgg16_layers()), read_bundle(tmp_path / "vgg16.safetensors").layers)
    # a 1000-class file does not fit a 2-class spec
    spec = tmp_path / "cats_dogs.yaml"
    spec.write_text("name: cats_dogs\nconfiguration: D\nclasses: 2\n")
    done = convert(source, tmp_path / "cats_dogs.pt", "--spec", spec)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"error: {source}: layer predictions: expected kernel of shape (4096, 2), "
        "received (4096, 1000) (dataset '/predictions/predictions_W_1:0')"
    )
    assert not (tmp_path / "cats_dogs.pt").exists()


def _write_variant(tmp_path, variant: str):
    """A bad weight file of the small spec; returns (path, what the error must say)."""
    layers = plan_layers(small_plan())
    if variant == "truncated":
        good = write_keras1_h5(tmp_path / "whole.h5", layers).read_bytes()
        path = tmp_path / "truncated.h5"
        path.write_bytes(good[: len(good) * 2 // 3])
        (tmp_path / "whole.h5").unlink()
        return path, ["truncated", f"{len(good):,} bytes"]
    if variant == "not_hdf5":
        path = tmp_path / "photo.h5"
        path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
        return path, ["expected an HDF5 file, received 204 bytes without the HDF5 signature"]
    if variant == "missing_layer":
        return write_keras1_h5(tmp_path / "no_fc2.h5", [item for item in layers if item[0] != "fc2"]), [
            "layer fc2: expected weights for this layer, received a file without it"
        ]
    if variant == "wrong_shape":
        other = plan_layers(small_plan(classes=7))
        return write_keras1_h5(tmp_path / "seven.h5", other), [
            "layer predictions: expected kernel of shape (12, 10), received (12, 7)"
        ]
    if variant == "oihw_kernels":
        oihw = [
            (name, {w: (a.transpose(3, 2, 0, 1) if a.ndim == 4 else a) for w, a in weights.items()})
            for name, weights in layers
        ]
        return write_keras1_h5(tmp_path / "theano.h5", oihw), [
            "layer block1_conv1: expected kernel of shape (3, 3, 3, 4), received (4, 3, 3, 3)",
            "OIHW",
        ]
    if variant == "unknown_extension":
        path = tmp_path / "small.onnx"
        write_keras1_h5(path, layers)
        return path, [
            "expected a weight file named .h5 or .hdf5 (Keras 1/2), .weights.h5 (Keras 3), "
            ".keras (Keras 3 model, read only), .safetensors, .pt or .pth (PyTorch), received 'small.onnx'"
        ]
    if variant == "not_torch":
        path = tmp_path / "notes.pt"
        path.write_text("just text\n")
        return path, ["expected a PyTorch state dict saved with torch.save"]
    if variant == "does_not_exist":
        return tmp_path / "absent.h5", ["expected a weight file, received a path that does not exist"]
    raise AssertionError(variant)


# each bad source with an existing destination of another format
VARIANTS = [
    ("truncated", "out.pt"),
    ("not_hdf5", "out.safetensors"),
    ("missing_layer", "out.weights.h5"),
    ("wrong_shape", "out.h5"),
    ("oihw_kernels", "out.pt"),
    ("unknown_extension", "out.h5"),
    ("not_torch", "out.safetensors"),
    ("does_not_exist", "out.pth"),
]


@pytest.mark.parametrize("variant, destination", VARIANTS)
def test_bad_weight_files_exit_2_with_one_line_and_write_nothing(tmp_path, variant, destination):
    spec = small_spec_file(tmp_path)
    source, messages = _write_variant(tmp_path, variant)
    target = tmp_path / destination
    target.write_bytes(b"the previous file")
    before = sorted(path.name for path in tmp_path.iterdir())
    done = convert(source, target, "--spec", spec)
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {source}")
    for message in messages:
        assert message in line, line
    assert target.read_bytes() == b"the previous file"
    assert sorted(path.name for path in tmp_path.iterdir()) == before


def test_unknown_destination_extension_is_refused_before_any_work(small, tmp_path):
    spec, source, _ = small
    done = convert(source, tmp_path / "small.npz", "--spec", spec)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: {tmp_path / 'small.npz'}: expected a weight file named .h5 or .hdf5 "
        "(Keras 1/2), .weights.h5 (Keras 3), .keras (Keras 3 model, read only), "
        ".safetensors, .pt or .pth (PyTorch), received 'small.npz'"
    )
    assert not (tmp_path / "small.npz").exists()


def test_a_bad_spec_is_refused_with_exit_2(small, tmp_path):
    _, source, _ = small
    done = convert(source, tmp_path / "out.pt", "--spec", "no_such_spec")
    assert done.returncode == 2 and "Traceback" not in done.stderr and not (tmp_path / "out.pt").exists()


# The command line in a process where ``import torch`` fails, as on an install without the torch extra
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; from vggspec.cli import main; sys.exit(main(sys.argv[1:]))"


def without_torch(*args):
    return run_in_own_session([sys.executable, "-c", WITHOUT_TORCH, *map(str, args)], 600, env=dict(os.environ))


def test_pt_files_without_torch_get_the_install_hint_the_backends_give(small, tmp_path):
    spec, source, _ = small
    assert convert(source, tmp_path / "small.pt", "--spec", spec).returncode == 0
    hint = 'needs torch, which is not installed: pip install "vggspec[torch]"'
    cases = {
        ("convert", tmp_path / "small.pt", tmp_path / "out.h5", "--spec", spec): f"{tmp_path / 'small.pt'}: reading "
        f"a PyTorch state dict {hint}",
        ("convert", source, tmp_path / "out.pt", "--spec", spec): f"{tmp_path / 'out.pt'}: writing a PyTorch state "
        f"dict {hint}",
        ("build", spec, "--backend", "torch", "--out", tmp_path / "m.pt"): f"backend 'torch' {hint}",  # the backends
    }
    for args, line in cases.items():
        done = without_torch(*args)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        assert done.stderr.splitlines() == [f"error: {line}"]
    assert not any((tmp_path / name).exists() for name in ("out.h5", "out.pt", "m.pt"))
