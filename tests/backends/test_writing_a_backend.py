"""A third-party backend written from the README's "Writing a backend" alone: NumPy, no framework.

The plugin below uses only what that section names (the Backend members, the typed layers of
vggspec.planner.layers and their fields, the canonical weight layout), is installed the way
pip would install a distribution (a dist-info registering the entry point), and must agree
with the torch backend layer by layer in ``vggspec verify``, its predict and get_weights too.
(vggspec ships such a backend, ``numpy``: this one is written without reading it.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_vggspec
from plugin_sites import install_plugin, with_site

pytest.importorskip("torch")

NUMPY_BACKEND = '''
    """vggspec's plan in NumPy: a model is a dict {plan, arrays}."""

    import math
    import pickle

    import numpy as np

    from vggspec.planner import layers as L
    from vggspec.weights.bundle import WeightBundle

    ACTIVATIONS = {
        "relu": lambda x: np.maximum(x, 0),
        "relu6": lambda x: np.clip(x, 0, 6),
        "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0))),
        "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
        "silu": lambda x: x / (1 + np.exp(-x)),
        "tanh": np.tanh,
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    }


    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


    def activate(x, name):
        if name is None:
            return x
        if name == "softmax":
            return softmax(x)
        return ACTIVATIONS[name](x)


    def run_layer(layer, x, w):
        if isinstance(layer, L.InputLayer):
            return x
        if isinstance(layer, L.Conv2D):
            k, p = layer.kernel_size, layer.kernel_size // 2
            padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))  # N,H,W,C,k,k
            y = np.einsum("nhwcij,ijco->nhwo", windows, w["kernel"]) + w["bias"]
            return activate(y, layer.activation)
        if isinstance(layer, L.BatchNormalization):
            scale = w["gamma"] / np.sqrt(w["moving_variance"] + layer.epsilon)
            return (x - w["moving_mean"]) * scale + w["beta"]
        if isinstance(layer, L.Activation):
            return activate(x, layer.activation)
        if isinstance(layer, L.LocalResponseNormalization):
            channels = x.shape[-1]
            padded = np.pad(x**2, ((0, 0), (0, 0), (0, 0), (layer.size // 2, (layer.size - 1) // 2)))
            total = sum(padded[..., i : i + channels] for i in range(layer.size))
            return x / (layer.k + layer.alpha / layer.size * total) ** layer.beta
        if isinstance(layer, L.MaxPooling2D):
            s, q = layer.strides, layer.pool_size
            windows = np.lib.stride_tricks.sliding_window_view(x, (q, q), axis=(1, 2))[:, ::s, ::s]
            return windows.max(axis=(-1, -2))
        if isinstance(layer, L.Flatten):
            return x.reshape(len(x), -1)
        if isinstance(layer, L.Dense):
            return activate(x @ w["kernel"] + w["bias"], layer.activation)
        if isinstance(layer, L.Dropout):
            return x
        if isinstance(layer, L.GlobalAveragePooling2D):
            return x.mean(axis=(1, 2))
        if isinstance(layer, L.GlobalMaxPooling2D):
            return x.max(axis=(1, 2))
        raise ValueError(f"no NumPy code for a {type(layer).__name__}")


    class NumpyBackend:
        name = "handwritten"
        requires = ("numpy",)
        install = "pip install numpy"

        def build(self, plan):
            rng = np.random.default_rng(0)
            arrays = {layer.name: {weight: rng.normal(0, 0.05, shape).astype(np.float32)
                                   for weight, shape in layer.weights} for layer in plan.layers if layer.weights}
            return {"plan": plan, "arrays": arrays}

        def count_params(self, model):
            trainable = sum(layer.trainable_params for layer in model["plan"].layers)
            return trainable, sum(layer.non_trainable_params for layer in model["plan"].layers)

        def get_weights(self, model, plan):
            return WeightBundle({name: {w: a.copy() for w, a in ws.items()} for name, ws in model["arrays"].items()})

        def set_weights(self, model, plan, bundle):
            for name, weights in bundle.layers.items():
                model["arrays"][name].update({w: np.asarray(a, np.float32) for w, a in weights.items()})

        def activations(self, model, plan, images):
            x, outputs = np.asarray(images, np.float32), {}
            for layer in plan.layers:
                x = run_layer(layer, x, model["arrays"].get(layer.name, {})).astype(np.float32)
                outputs[layer.name] = x
            return outputs

        def predict(self, model, images):
            return self.activations(model, model["plan"], images)[model["plan"].layers[-1].name]

        def save(self, model, path):
            with open(path, "wb") as file:
                pickle.dump(model["arrays"], file)
            return None
'''

SPEC = """name: tiny
layers: [conv3-6, LRN, maxpool, conv5-8, conv1-8, maxpool, conv3-12, maxpool]
input_shape: [32, 40, 3]
batch_norm: true
activation: gelu
fc: [24, 16]
dropout: 0.5
classes: 7
"""


@pytest.fixture
def numpy_plugin(tmp_path) -> dict[str, str]:
    site = tmp_path / "site"
    entry = {"handwritten": "vggspec_handwritten:NumpyBackend"}
    install_plugin(site, "vggspec_handwritten", entry, {"vggspec_handwritten": NUMPY_BACKEND})
    return with_site(site)


@pytest.mark.parametrize("variant", ["top", "notop_avg"])
def test_a_numpy_backend_written_from_the_readme_passes_verify(tmp_path, numpy_plugin, variant):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC if variant == "top" else SPEC + "include_top: false\npooling: avg\n")
    result = run_vggspec("verify", spec, "--backends", "torch,handwritten", "--json", env=numpy_plugin)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"] and report["first_divergent_layer"] is None
    assert report["params"]["handwritten"]["equal_to_plan"]
    checks = {(check["backend"], check["check"]): check for check in report["checks"]}
    assert checks["handwritten", "predict = torch"]["ok"] and checks["handwritten", "get_weights"]["ok"]
    assert checks["handwritten", "save"]["skipped"]  # it names no file suffix: its pickle is its own
    assert max(layer["rel_diff"] for layer in report["layers"]) < 1e-5
    names = [layer["name"] for layer in report["layers"]]
    assert "block1_lrn" in names and "block2_conv2_bn" in names
    assert names[-1] == ("predictions" if variant == "top" else "avg_pool")


def test_two_plugins_with_one_name_warn(tmp_path, numpy_plugin):
    """The hand-written backend registered as ``numpy`` too, the name of the one vggspec ships."""
    site = Path(numpy_plugin["PYTHONPATH"].split(os.pathsep)[0])
    install_plugin(site, "vggspec_numpy_again", {"numpy": "vggspec_handwritten:NumpyBackend"}, {})
    listing = run_vggspec("backends", env=numpy_plugin)
    assert listing.returncode == 0, listing.stderr
    assert "two plugins register the vggspec backend 'numpy'" in listing.stderr
    assert sum(1 for line in listing.stdout.splitlines() if line.startswith("numpy ")) == 1
