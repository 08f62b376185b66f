"""The backend contract (``vggspec.backends.Backend``, the README's "Writing a backend") as one suite, run over
every built-in backend and the NumPy reference.

Each test takes one backend and holds it to what the contract says: it is the plugin registered under its
name and imports without its framework; its counts are the plan's split; ``get_weights`` gives bit for bit
what ``set_weights`` set, and a partial bundle sets only its layers; ``activations`` are every plan layer,
channels last, float32; every plan layer type with every activation, every head and no-top model, and LRN
give the reference's numbers (the ``numpy`` backend, :data:`vggspec_numpy.layers.LAYERS`, itself held to the
formulas here and in tests/backends/test_numpy_backend.py); ``save`` writes a whole file or nothing. What is
framework-specific (torchvision's keys, ``keras.applications``, the ONNX checker) stays in each backend's file.
Small specs only (32×40 inputs, few filters): the full-size comparisons are the slow tests of those files.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import vggspec
from vggspec.backends import Backend, SavesWeightFile, available_backends, get_backend, install_hint
from vggspec.errors import BackendError
from vggspec.parity.compare import TOLERANCE
from vggspec.parity.inputs import random_bundle, synthetic_images
from vggspec.parity.paths import bundle_difference, check_activations, relative_difference
from vggspec.planner.activations import ACTIVATIONS
from vggspec.planner.layers import InputLayer, LocalResponseNormalization
from vggspec.planner.lower import Plan
from vggspec.preprocessing import preprocess
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.formats import format_for_name, read_bundle

BACKENDS = ["keras", "torch", "onnx", "numpy"]
FRAMEWORKS = {"keras": "keras", "torch": "torch", "onnx": "onnxruntime", "numpy": "numpy"}
EVERY_FRAMEWORK = ("keras", "tensorflow", "torch", "onnx", "onnxruntime", "jax")

# A small VGG on a 32x40 input (height and width differ, so a transposed map shows), the flattened map 8x10x16
SMALL = {
    "name": "contract",
    "layers": ["conv3-8", "maxpool", "conv3-16", "maxpool"],
    "input_shape": [32, 40, 3],
    "fc": [16, 12],
    "classes": 10,
}
# Every layer type of a top between them: batch norm (a convolution, its batch norm, its activation), LRN whose
# sum matters, kernels of 3, 5 and 1, pools, flatten, dense layers with dropout; SMALL fuses the activations.
EVERY_LAYER = {
    **SMALL,
    "layers": ["conv3-8", "LRN", "maxpool", "conv5-8", "conv1-16", "maxpool"],
    "batch_norm": True,
    "dropout": 0.5,
    "lrn": {"size": 3, "alpha": 1.0, "beta": 0.75, "k": 1.0},
}
HEADS = {
    "sigmoid": {"classes": 1, "classifier_activation": "sigmoid"},
    "logits": {"classes": 3, "classifier_activation": None},
    "notop_avg": {"include_top": False, "pooling": "avg"},
    "notop_max": {"include_top": False, "pooling": "max"},
    "notop_map": {"include_top": False},
}
LRN_CASES = [  # (size, alpha, beta, k): the paper's, ones where the sum dominates, a size above the 6 channels
    (5, 1e-4, 0.75, 2.0),
    (3, 1.0, 0.75, 1.0),
    (5, 2.0, 0.5, 0.5),
    (1, 0.5, 1.0, 1.0),
    (7, 1.0, 0.75, 1.0),
]


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    pytest.importorskip(FRAMEWORKS[request.param])
    return get_backend(request.param)


@pytest.fixture(params=[name for name in BACKENDS if name != "numpy"])
def other_backend(request) -> Backend:
    """Every backend but the reference, to hold to it."""
    pytest.importorskip(FRAMEWORKS[request.param])
    return get_backend(request.param)


@pytest.fixture(scope="module")
def reference() -> Backend:
    return get_backend("numpy")


def small_plan(mapping: dict = SMALL, **changes) -> Plan:
    return vggspec.plan(vggspec.spec_from_mapping({**mapping, **changes}))


def images(plan: Plan, count: int = 2, seed: int = 0) -> np.ndarray:
    """Preprocessed synthetic images, NHWC float32, as verify feeds them."""
    height, width, channels = plan.input_shape
    return preprocess(synthetic_images(count, height, width, channels, seed=seed), plan.preprocessing)


def run(backend: Backend, plan: Plan, bundle: WeightBundle, x: np.ndarray) -> dict[str, np.ndarray]:
    model = backend.build(plan)
    backend.set_weights(model, plan, bundle)
    return backend.activations(model, plan, x)


def assert_equals_the_reference(backend: Backend, reference: Backend, plan: Plan, seed: int = 0) -> None:
    """Every layer within verify's tolerance of the NumPy reference, on the same weights and images."""
    bundle, x = random_bundle(plan, seed), images(plan, seed=seed)
    ours, theirs = run(backend, plan, bundle, x), run(reference, plan, bundle, x)
    check_activations(backend.name, plan, ours, len(x))
    for layer in plan.layers:
        difference = relative_difference(theirs[layer.name], ours[layer.name])
        assert difference <= TOLERANCE, (plan.name, layer.name, difference)


# --- the plugin --------------------------------------------------------------------------------------------


def test_the_backend_is_the_plugin_registered_under_its_name(backend):
    assert isinstance(backend, Backend) and backend.name in available_backends()
    assert all(isinstance(module, str) for module in backend.requires) and FRAMEWORKS[backend.name] in backend.requires
    expected = 'pip install "numpy>=1.24"' if backend.name == "numpy" else install_hint(backend.name)
    assert backend.install == expected
    assert isinstance(backend, SavesWeightFile) and backend.save_suffix.startswith(".")


@pytest.mark.parametrize("name", BACKENDS)
def test_importing_the_backend_imports_no_framework(name):
    """Its module imports, and says what it needs and how to install it, without any framework."""
    code = (
        f"import sys, vggspec_{name}\n"
        "from vggspec.backends import installed_backend\n"
        f"backend = installed_backend({name!r})\n"
        "print(backend.name, list(backend.requires), backend.install)\n"
        f"print(sorted(m for m in {EVERY_FRAMEWORK!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    described, frameworks = done.stdout.strip().splitlines()[-2:]
    assert described.startswith(f"{name} ") and frameworks == "[]"


# --- counts and weights ------------------------------------------------------------------------------------


def test_counts_are_the_plans_split(backend):
    plan = small_plan(EVERY_LAYER)
    assert plan.non_trainable_params == 2 * (8 + 8 + 16)  # batch norm's moving mean and variance
    assert backend.count_params(backend.build(plan)) == (plan.trainable_params, plan.non_trainable_params)


def distinct_bundle(plan: Plan, seed: int) -> WeightBundle:
    """Arrays of the plan's shapes whose every value differs from the fresh ones (variances positive)."""
    bundle = random_bundle(plan, seed)
    for weights in bundle.layers.values():
        for name, array in weights.items():
            array += np.float32(0.5 if name == "moving_variance" else 0.01)
    return bundle


def test_weights_round_trip_bit_identical(backend):
    plan = small_plan(EVERY_LAYER)
    model = backend.build(plan)
    bundle = distinct_bundle(plan, seed=5)
    backend.set_weights(model, plan, bundle)
    back = backend.get_weights(model, plan)
    assert list(back.layers) == [layer.name for layer in plan.weighted_layers()] == list(bundle.layers)
    for layer in plan.weighted_layers():
        assert list(back.layers[layer.name]) == [name for name, _ in layer.weights]
    assert bundle_difference(bundle, back) is None  # float32, same shapes, every bit
    kept = back.layers["fc1"]["kernel"].copy()
    backend.set_weights(model, plan, distinct_bundle(plan, seed=6))
    np.testing.assert_array_equal(back.layers["fc1"]["kernel"], kept)  # a copy, not a view of the model


def test_a_partial_bundle_sets_only_its_layers_and_takes_effect(backend):
    plan = small_plan(EVERY_LAYER)
    model = backend.build(plan)
    x = images(plan)
    first = backend.predict(model, x)  # a backend that caches a compiled model must see the new weights
    before = backend.get_weights(model, plan)
    donor = distinct_bundle(plan, seed=7)
    partial = WeightBundle({name: donor.layers[name] for name in ("block1_conv1", "block2_conv1_bn", "predictions")})
    backend.set_weights(model, plan, partial)
    after = backend.get_weights(model, plan)
    for layer in plan.weighted_layers():
        expected = partial.layers.get(layer.name, before.layers[layer.name])
        assert bundle_difference(WeightBundle({layer.name: expected}), after) is None, layer.name
    assert np.abs(backend.predict(model, x) - first).max() > 1e-3


# --- what the layers compute -------------------------------------------------------------------------------


def test_activations_are_every_plan_layer_channels_last_float32(backend):
    plan = small_plan(EVERY_LAYER)
    model = backend.build(plan)
    backend.set_weights(model, plan, random_bundle(plan, seed=1))
    x = images(plan, count=3)
    outputs = backend.activations(model, plan, x)
    check_activations(backend.name, plan, outputs, 3)  # each (3, *output_shape), float32, none missing or extra
    assert list(outputs) == [layer.name for layer in plan.layers]
    np.testing.assert_array_equal(outputs["input_layer"], x)
    np.testing.assert_array_equal(outputs["fc1_dropout"], outputs["fc1"])  # dropout: the identity at inference
    predicted = backend.predict(model, x)
    assert predicted.dtype == np.float32 and relative_difference(outputs["predictions"], predicted) <= TOLERANCE
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_layer_type_with_every_activation_equals_the_reference(other_backend, reference, activation):
    """Every plan layer type (batch norm's separate activation, LRN, kernels 1, 3 and 5; dense layers with
    dropout) and the activation fused into the convolutions, against the NumPy reference."""
    assert_equals_the_reference(other_backend, reference, small_plan(EVERY_LAYER, activation=activation))
    assert_equals_the_reference(other_backend, reference, small_plan(activation=activation), seed=1)


@pytest.mark.parametrize("changes", list(HEADS.values()), ids=list(HEADS))
def test_every_head_and_model_without_top_equals_the_reference(other_backend, reference, changes):
    plan = small_plan(**changes)
    assert other_backend.count_params(other_backend.build(plan)) == (plan.trainable_params, 0)
    assert_equals_the_reference(other_backend, reference, plan)


def lrn_plan(size: int, alpha: float, beta: float, k: float, shape=(5, 6, 6)) -> Plan:
    """A plan of the input and one LRN, made by hand (a spec also needs a convolution)."""
    layers = (
        InputLayer(name="input_layer", output_shape=shape),
        LocalResponseNormalization(name="block1_lrn", output_shape=shape, size=size, alpha=alpha, beta=beta, k=k),
    )
    return Plan(name="lrn", input_shape=shape, layers=layers, preprocessing="caffe", classes=None)


def lrn_formula(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """x / (k + alpha/size · Σ x²)^beta over channels c - size//2 ... c + (size-1)//2, zero beyond; float64."""
    half = size // 2
    squares = np.pad(x.astype(np.float64) ** 2, [(0, 0)] * 3 + [(half, size - 1 - half)])
    window = sum(squares[..., i : i + x.shape[-1]] for i in range(size))
    return x / (k + alpha / size * window) ** beta


@pytest.mark.parametrize("size, alpha, beta, k", LRN_CASES)
def test_lrn_equals_the_formula(backend, size, alpha, beta, k):
    plan = lrn_plan(size, alpha, beta, k)
    x = np.random.default_rng(size).normal(0, 3, (2, *plan.input_shape)).astype(np.float32)
    ours = backend.predict(backend.build(plan), x)
    assert ours.shape == x.shape and ours.dtype == np.float32
    assert np.abs(x - ours).max() > 1e-3  # the layer does something
    np.testing.assert_allclose(ours, lrn_formula(x, size, alpha, beta, k), rtol=1e-5, atol=1e-6)


# --- save --------------------------------------------------------------------------------------------------


def test_save_writes_a_whole_file_in_place_of_the_old_one(backend, tmp_path):
    plan = small_plan(EVERY_LAYER)
    model = backend.build(plan)
    backend.set_weights(model, plan, random_bundle(plan, seed=3))
    path = tmp_path / f"model{backend.save_suffix}"
    path.write_bytes(b"the previous model")
    line = backend.save(model, str(path))
    assert line is None or isinstance(line, str)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert path.stat().st_size > 4 * plan.total_params
    try:
        format_for_name(path)
    except vggspec.VggspecError:
        return  # not a weight file vggspec reads (onnx: its own file holds its test)
    assert bundle_difference(backend.get_weights(model, plan), read_bundle(path, plan)) is None


def test_save_leaves_the_destination_as_it_was_when_it_fails(backend, tmp_path, monkeypatch):
    """A failure at the very end (the rename) leaves the old file and nothing else: the new one was written
    beside it. A name the backend cannot write is refused before anything is written."""
    plan = small_plan()
    model = backend.build(plan)
    path = tmp_path / f"model{backend.save_suffix}"
    path.write_bytes(b"the previous model")

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", refuse)
        with pytest.raises((OSError, vggspec.VggspecError)):
            backend.save(model, str(path))
    assert path.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    other = tmp_path / "model.unknown"
    try:
        backend.save(model, str(other))
    except BackendError as error:
        assert str(error).startswith(f"{other}: expected a file name ending in {backend.save_suffix}"), error
        assert not other.exists()
    else:
        assert backend.name == "torch" and other.stat().st_size > 0  # a state dict goes under any name
    assert {p.name for p in tmp_path.iterdir()} <= {path.name, other.name}
