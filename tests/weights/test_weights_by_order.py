"""Weight files saved from hand-written Keras models (``Sequential()`` with auto-named layers), read by order.

A tutorial's VGG is a ``Sequential()`` of unnamed layers: its legacy ``.h5`` file names them
``conv2d_1`` ... ``dense_3`` (Keras 2) or ``convolution2d_1`` (Keras 1), with ``ZeroPadding2D``
layers before each convolution in the Keras 1 style. The models are built here with real Keras
and their files written in the legacy layout with h5py (Keras 3 writes only ``.weights.h5``).
A small VGG-shaped spec runs by default; VGG16 itself under ``-m slow``.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

import vggspec
from vggspec.building import build_model, read_checked_bundle
from vggspec.errors import WeightsError
from vggspec.weights.formats import read_bundle

from weight_fixtures import SMALL, small_spec_file, write_handwritten_h5, write_keras2_h5

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

SMALL_PAIRS = [  # the small spec's weighted layers, paired with the Keras 2 names of a hand-written model
    ("conv2d_1", "block1_conv1"),
    ("conv2d_2", "block1_conv2"),
    ("conv2d_3", "block2_conv1"),
    ("dense_1", "fc1"),
    ("dense_2", "fc2"),
    ("dense_3", "predictions"),
]


def handwritten_vgg(mapping: dict, zero_padding: bool = False, leave_out: int = -1, seed: int = 0):
    """The spec's network as a tutorial writes it: ``Sequential()`` of unnamed layers, 'valid' convolutions after
    ``ZeroPadding2D((1, 1))`` (Keras 1 style) or 'same' ones, dropout after each hidden Dense (weightless).
    ``leave_out``: the index of a convolution to leave out (a file one convolution short). Weights random."""
    from keras import layers

    model = keras.Sequential()
    model.add(keras.Input(shape=tuple(mapping["input_shape"])))
    convolutions = 0
    for token in mapping["layers"]:
        if token == "maxpool":
            model.add(layers.MaxPooling2D((2, 2), strides=(2, 2)))
            continue
        convolutions += 1
        if convolutions - 1 == leave_out:
            continue
        filters = int(token.split("-")[1])
        if zero_padding:
            model.add(layers.ZeroPadding2D((1, 1)))
            model.add(layers.Conv2D(filters, (3, 3), activation="relu"))
        else:
            model.add(layers.Conv2D(filters, (3, 3), activation="relu", padding="same"))
    model.add(layers.Flatten())
    for units in mapping["fc"]:
        model.add(layers.Dense(units, activation="relu"))
        model.add(layers.Dropout(0.5))
    model.add(layers.Dense(mapping["classes"], activation="softmax"))
    rng = np.random.default_rng(seed)  # Keras' biases start at zero: make every array count
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def images(shape, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, shape).astype(np.float32)


def assert_close(received: np.ndarray, expected: np.ndarray, tolerance: float = 1e-5) -> None:
    """max|Δ| ≤ tolerance · max(1, max|expected|) (fp32, two frameworks)."""
    assert received.shape == expected.shape
    assert np.abs(received - expected).max() <= tolerance * max(1.0, float(np.abs(expected).max()))


@pytest.fixture(scope="module")
def small_files(module_tmp):
    """The small spec's file, and legacy files of its hand-written model: Keras 2 names, and Keras 1 names with
    ZeroPadding2D layers; with the models that saved them."""
    folder = module_tmp.mktemp("handwritten")
    plain, padded = handwritten_vgg(SMALL, seed=1), handwritten_vgg(SMALL, zero_padding=True, seed=2)
    return {
        "spec": small_spec_file(folder),
        "keras2": (write_handwritten_h5(folder / "keras2.h5", plain, keras_version=2), plain),
        "keras1": (write_handwritten_h5(folder / "keras1_padded.h5", padded, keras_version=1), padded),
    }


def test_fixture_files_have_the_auto_generated_names_and_keras_reads_them(small_files):
    path, model = small_files["keras1"]
    with h5py.File(path, "r") as file:
        names = [name.decode() for name in file.attrs["layer_names"]]
        assert names[:4] == ["zeropadding2d_1", "convolution2d_1", "zeropadding2d_2", "convolution2d_2"]
        assert names[-3:] == ["dense_2", "dropout_2", "dense_3"] and "flatten_1" in names
        assert len(file["zeropadding2d_1"].attrs["weight_names"]) == 0  # weightless: listed, no arrays
        assert [n.decode() for n in file["convolution2d_1"].attrs["weight_names"]] == [
            "convolution2d_1_W_1:0",
            "convolution2d_1_b_1:0",
        ]
    with h5py.File(small_files["keras2"][0], "r") as file:
        assert [name.decode() for name in file.attrs["layer_names"]][:3] == ["conv2d_1", "conv2d_2", "max_pooling2d_1"]
    # Keras itself loads the file into a fresh hand-written model, by order
    fresh = handwritten_vgg(SMALL, zero_padding=True, seed=9)
    fresh.load_weights(str(path))
    for ours, theirs in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("layout", ["keras2", "keras1"])
def test_read_by_order_with_the_pairs_returned(small_files, layout):
    path, model = small_files[layout]
    plan = vggspec.plan(vggspec.spec_from_mapping(SMALL))
    with pytest.warns(UserWarning) as warned:  # build, verify, features and finetune tell the user
        bundle, skipped = read_checked_bundle(plan, path)
    theirs = [pair[0] for pair in SMALL_PAIRS]
    if layout == "keras1":
        theirs = [name.replace("conv2d", "convolution2d") for name in theirs]
    assert skipped == [] and bundle.by_order == tuple(zip(theirs, [pair[1] for pair in SMALL_PAIRS]))
    assert list(bundle.layers) == [layer.name for layer in plan.weighted_layers()]
    kernels = [w for w in model.get_weights() if w.ndim > 1]
    for layer, kernel in zip(plan.weighted_layers(), kernels):
        np.testing.assert_array_equal(bundle.layers[layer.name]["kernel"], kernel)
    note = bundle.matching_note()
    assert [str(warning.message) for warning in warned] == [note]
    assert note.startswith(f"{path}: its layer names are not the plan's, so its 6 weighted layers were matched")
    assert f"{theirs[0]} → block1_conv1, " in note and note.endswith(f"{theirs[-1]} → predictions")
    # read_bundle (write_bundle's check too) goes through the same fit: same arrays
    again = read_bundle(path, plan)
    assert list(again.layers) == list(bundle.layers)


def test_a_file_named_as_the_plan_is_still_read_by_name(tmp_path):
    """Names win whenever one of them is the plan's: a notop file is refused at fc1, not paired by order."""
    plan = vggspec.plan(vggspec.spec_from_mapping(SMALL))
    layers = [(layer.name, {n: np.ones(s, np.float32) for n, s in layer.weights}) for layer in plan.layers[:6]]
    path = write_keras2_h5(tmp_path / "notop.h5", layers)
    with pytest.raises(WeightsError, match=r"notop\.h5: layer fc1: expected weights for this layer, received a file"):
        read_checked_bundle(plan, path)
    bundle, _ = read_checked_bundle(vggspec.plan(vggspec.spec_from_mapping({**SMALL, "include_top": False})), path)
    assert bundle.by_order == () and bundle.matching_note() is None


def test_convert_prints_the_pairs_and_torch_gives_the_keras_outputs(small_files, tmp_path, cli):
    for layout in ("keras2", "keras1"):
        path, model = small_files[layout]
        out = tmp_path / f"{layout}.pt"
        result = cli("convert", path, out, "--spec", small_files["spec"])
        assert result.returncode == 0, result.stderr
        # stdout is convert's one line, as for any file; the pairs are one note on stderr
        assert re.fullmatch(
            rf"{re.escape(str(out))}: PyTorch state dict from {re.escape(str(path))} \(Keras [12] HDF5 weights\), "
            r"6 layers, [0-9,]+ parameters, preprocessing not known, [0-9.]+ s\n",
            result.stdout,
        )
        notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
        assert len(notes) == 1 and "matched by order" in notes[0] and notes[0].endswith("_3 → predictions")
        state = torch.load(out, weights_only=True)
        assert list(state)[:2] == ["features.0.weight", "features.0.bias"] and "classifier.6.bias" in state
        torch_model = build_model(vggspec.load_spec(small_files["spec"]), "torch", out)
        x = images((3, 32, 32, 3))
        expected = model.predict_on_batch(x)
        received = vggspec.backends.get_backend("torch").predict(torch_model, x)
        assert np.abs(expected).max() > 0.05
        assert_close(received, expected)


def test_build_and_finetune_read_the_file_by_order(small_files):
    """build --weights (build_model), verify --weights (read_checked_bundle) and finetune --weights
    (skip_mismatch: a 2-class head) all go through the one fit."""
    path, model = small_files["keras2"]
    with pytest.warns(UserWarning, match=r"were matched by order \(as Keras' load_weights does\)"):
        keras_model = build_model(vggspec.spec_from_mapping(SMALL), "keras", path)
    x = images((2, 32, 32, 3), seed=4)
    assert_close(keras_model.predict_on_batch(x), model.predict_on_batch(x), 1e-6)
    two_classes = vggspec.plan(vggspec.spec_from_mapping({**SMALL, "classes": 2}))
    with pytest.warns(UserWarning, match="matched by order"):
        bundle, skipped = read_checked_bundle(two_classes, path, skip_mismatch=True)
    assert list(bundle.layers) == ["block1_conv1", "block1_conv2", "block2_conv1", "fc1", "fc2"]
    assert bundle.by_order[-1] == ("dense_3", "predictions")
    assert skipped == [
        f"{path}: layer predictions: expected kernel of shape (12, 2), received (12, 10) "
        "(dataset '/dense_3/dense_3/kernel:0')"
    ]


def test_a_file_one_convolution_short_is_refused_where_the_order_stops_fitting(tmp_path, cli):
    short = handwritten_vgg(SMALL, leave_out=1)  # block1_conv2 missing
    path = write_handwritten_h5(tmp_path / "short.h5", short)
    spec = small_spec_file(tmp_path)
    result = cli("convert", path, tmp_path / "short.pt", "--spec", spec)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: {path}: the file has 5 weighted layers, the plan 6; read by order (its layer names are not the "
        "plan's), the order stops fitting at file layer 2 of 5 (conv2d_2) → plan layer block1_conv2, after "
        "conv2d_1 → block1_conv1: expected kernel of shape (3, 3, 4, 4), received (3, 3, 4, 8) "
        "(dataset '/conv2d_2/conv2d_2/kernel:0')\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.h5", "small.yaml"]
    # the same count with a wrong shape; and a file with one layer more than the plan
    wide = handwritten_vgg({**SMALL, "fc": [16, 13]})
    with pytest.raises(WeightsError) as refused:
        read_checked_bundle(
            vggspec.plan(vggspec.spec_from_mapping(SMALL)), write_handwritten_h5(tmp_path / "w.h5", wide)
        )
    assert str(refused.value).endswith(
        "read by order (its layer names are not the plan's), the order stops fitting at file layer 5 of 6 (dense_2) "
        "→ plan layer fc2, after dense_1 → fc1: expected kernel of shape (16, 12), received (16, 13) "
        "(dataset '/dense_2/dense_2/kernel:0')"
    )
    longer = handwritten_vgg({**SMALL, "fc": [16, 12, 12]})
    plan = vggspec.plan(vggspec.spec_from_mapping({**SMALL, "classes": 12}))
    with pytest.raises(WeightsError) as refused:
        read_checked_bundle(plan, write_handwritten_h5(tmp_path / "l.h5", longer))
    assert str(refused.value) == (
        f"{tmp_path / 'l.h5'}: the file has 7 weighted layers, the plan 6; read by order (its layer names are not "
        "the plan's), all 6 pairs fit up to dense_3 → predictions, and the file's dense_4 has no plan layer"
    )


@pytest.mark.slow
def test_handwritten_vgg16_converts_to_torch_with_the_same_outputs(tmp_path, cli):
    """A tutorial's full VGG16 (ZeroPadding2D, Keras 1 names) to .pt; torch gives the Keras model's outputs."""
    mapping = {**vggspec.spec_to_mapping(vggspec.load_spec("vgg16")), "name": "vgg16"}
    model = handwritten_vgg(mapping, zero_padding=True, seed=3)
    path = write_handwritten_h5(tmp_path / "vgg16_handwritten.h5", model, keras_version=1)
    result = cli("convert", path, tmp_path / "vgg16.pt")
    assert result.returncode == 0, result.stderr
    assert "convolution2d_13 → block5_conv3, dense_1 → fc1" in result.stderr
    torch_model = build_model(vggspec.load_spec("vgg16"), "torch", tmp_path / "vgg16.pt")
    x = images((2, 224, 224, 3), scale=50.0)
    expected = model.predict_on_batch(x)
    assert_close(vggspec.backends.get_backend("torch").predict(torch_model, x), expected, 1e-4)
    short = handwritten_vgg(mapping, leave_out=12)  # block5_conv3 missing
    result = cli("convert", write_handwritten_h5(tmp_path / "short.h5", short), tmp_path / "short.pt")
    assert result.returncode == 2 and "the file has 15 weighted layers, the plan 16" in result.stderr
    assert "file layer 13 of 15 (dense_1) → plan layer block5_conv3, after conv2d_12 → block5_conv2" in result.stderr
