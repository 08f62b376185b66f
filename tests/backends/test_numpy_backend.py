"""The NumPy reference backend held to the formulas it implements, written out here another way.

Every other backend is held to this one in tests/backends/test_contract.py, and this one to torch and
Keras there too (they agree, layer by layer); here its own pieces: the convolution as one product against
a sum over the kernel's offsets, erf against Python's, the pools, the model's outputs, no framework.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

import vggspec
from vggspec.backends import get_backend
from vggspec.errors import BackendError
from vggspec.parity.compare import TOLERANCE
from vggspec.planner import layers as plan_layers
from vggspec_numpy import layers as numpy_layers

SMALL = {
    "name": "small",
    "layers": ["conv3-8", "maxpool", "conv5-16", "conv1-16", "maxpool"],
    "input_shape": [32, 40, 3],
    "fc": [16],
    "classes": 10,
}


@pytest.fixture(scope="module")
def backend():
    return get_backend("numpy")


def conv_by_offsets(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' cross-correlation as a sum over the kernel's k² offsets of shifted products (float64)."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    total = sum(
        padded[:, i : i + height, j : j + width] @ kernel[i, j].astype(np.float64) for i in range(k) for j in range(k)
    )
    return total + bias


@pytest.mark.parametrize("kernel_size, channels, filters", [(1, 3, 4), (3, 5, 7), (5, 2, 3)])
def test_the_convolution_is_the_sum_over_the_kernels_offsets(kernel_size, channels, filters, monkeypatch):
    rng = np.random.default_rng(kernel_size)
    x = rng.normal(0, 1, (2, 9, 11, channels)).astype(np.float32)
    weights = {
        "kernel": rng.normal(0, 1, (kernel_size, kernel_size, channels, filters)).astype(np.float32),
        "bias": rng.normal(0, 1, filters).astype(np.float32),
    }
    layer = plan_layers.Conv2D(
        name="conv", output_shape=(9, 11, filters), filters=filters, kernel_size=kernel_size,
        input_channels=channels, activation=None,
    )  # fmt: skip
    expected = conv_by_offsets(x, weights["kernel"], weights["bias"])
    whole = numpy_layers.conv2d(layer, x, weights)
    assert whole.dtype == np.float32 and whole.shape == expected.shape
    np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(numpy_layers, "WINDOWS_BYTES", 1)  # a product per row of the output: the same numbers
    np.testing.assert_allclose(numpy_layers.conv2d(layer, x, weights), whole, rtol=1e-6, atol=1e-5)


def test_max_pooling_drops_a_last_row_and_column_that_fill_no_window():
    x = np.random.default_rng(0).normal(0, 1, (1, 5, 7, 2)).astype(np.float32)
    layer = plan_layers.MaxPooling2D(name="pool", output_shape=(2, 3, 2))
    expected = x[:, :4, :6].reshape(1, 2, 2, 3, 2, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(numpy_layers.max_pool(layer, x, {}), expected)


def test_erf_is_pythons_to_float32_precision():
    x = np.linspace(-7, 7, 14_001)
    expected = np.array([math.erf(value) for value in x])
    assert np.abs(numpy_layers.erf(x) - expected).max() < 1e-7
    gelu = numpy_layers.ACTIVATIONS["gelu"](x.astype(np.float32))  # x · Φ(x)
    exact = np.array([value * (1 + math.erf(value / math.sqrt(2))) / 2 for value in x])
    np.testing.assert_allclose(gelu, exact, rtol=1e-6, atol=1e-6)


def test_activations_keep_float32_and_stay_quiet_at_extremes():
    x = np.array([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp
        for name, function in {**numpy_layers.ACTIVATIONS, **numpy_layers.CLASSIFIER_ACTIVATIONS}.items():
            y = np.asarray(numpy_layers.activate(x, name, {name: function}))
            assert y.dtype == np.float32 and np.isfinite(y).all(), name
    np.testing.assert_allclose(numpy_layers.sigmoid(x)[[0, 3, 6]], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(numpy_layers.softmax(np.array([[1e4, 0.0]], np.float32)), [[1.0, 0.0]])


def test_a_model_runs_only_the_layers_it_needs_and_gives_named_outputs(backend):
    spec = vggspec.spec_from_mapping(SMALL)
    plan = vggspec.plan(spec)
    model = backend.build(plan)
    x = np.random.default_rng(1).normal(0, 50, (2, 32, 40, 3)).astype(np.float32)
    every = backend.activations(model, plan, x)
    extractor = vggspec.build(spec, backend="numpy", outputs=["block1_conv1", "block2_pool"])
    outputs = extractor(x)
    assert list(outputs) == ["block1_conv1", "block2_pool"] and set(extractor.arrays) < set(model.arrays)
    for name, array in outputs.items():
        np.testing.assert_array_equal(array, every[name])
    np.testing.assert_array_equal(backend.predict(model, x), every["predictions"])


def test_predict_refuses_images_of_the_wrong_shape(backend):
    model = backend.build(vggspec.plan(vggspec.spec_from_mapping(SMALL)))
    with pytest.raises(BackendError, match=r"expected an array of shape \(N, 32, 40, 3\), received \(2, 40, 32, 3\)"):
        backend.predict(model, np.zeros((2, 40, 32, 3), np.float32))


def test_a_layer_type_the_table_lacks_is_refused(backend):
    plan = vggspec.plan(vggspec.spec_from_mapping(SMALL))
    model = backend.build(plan)
    cut = plan.up_to("block1_conv1")
    unknown = plan_layers.PlanLayer(name="block1_avg", output_shape=(32, 40, 8))
    model.plan = dataclasses.replace(cut, layers=(*cut.layers, unknown))
    with pytest.raises(BackendError, match="layer block1_avg: the numpy backend has no function for a PlanLayer"):
        backend.predict(model, np.zeros((1, 32, 40, 3), np.float32))


def test_it_predicts_with_no_framework_imported(tmp_path):
    code = (
        "import sys, numpy as np, vggspec\n"
        "from vggspec.backends import get_backend\n"
        "backend = get_backend('numpy')\n"
        "plan = vggspec.plan(vggspec.spec_from_mapping({'name': 'x', 'layers': ['conv3-4', 'maxpool'], "
        "'input_shape': [32, 32, 3], 'fc': [8], 'classes': 3}))\n"
        "scores = backend.predict(backend.build(plan), np.ones((2, 32, 32, 3), np.float32))\n"
        "print(scores.shape, sorted(m for m in ('keras', 'tensorflow', 'torch', 'onnxruntime') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(2, 3) []"


@pytest.mark.slow
def test_vgg16_equals_torch_at_full_size():
    pytest.importorskip("torch")
    from vggspec.parity.compare import compare_backends
    from vggspec.parity.inputs import random_bundle, synthetic_images
    from vggspec.preprocessing import preprocess

    plan = vggspec.plan("vgg16")
    x = preprocess(synthetic_images(1, 224, 224, 3), plan.preprocessing)
    report = compare_backends(plan, random_bundle(plan), x, ["torch", "numpy"], progress=False)
    assert report.ok and report.top5_agreement == 1.0
    assert max(layer.rel_diff for layer in report.layers) < TOLERANCE / 10
