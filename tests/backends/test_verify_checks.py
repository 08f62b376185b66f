"""``verify`` checks the paths users call, and each check fails on a backend that breaks it.

The deliberately wrong backends below are the NumPy reference with one method broken, installed as plugins
the way pip installs a distribution; their layers all agree with the reference, so only the check of the
broken path can catch them. No deep-learning framework is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_vggspec
from plugin_sites import install_plugin, with_site

WRONG = """
    import numpy as np

    from vggspec.weights.bundle import WeightBundle
    from vggspec.weights.formats import write_bundle
    from vggspec_numpy import NumpyBackend


    class ZerosPredict(NumpyBackend):
        name = "zeros_predict"

        def predict(self, model, images):
            return np.zeros_like(super().predict(model, images))


    class ZerosWeights(NumpyBackend):
        name = "zeros_weights"

        def get_weights(self, model, plan):
            bundle = super().get_weights(model, plan)
            zeros = {layer: {w: np.zeros_like(a) for w, a in ws.items()} for layer, ws in bundle.layers.items()}
            return WeightBundle(zeros)


    class WrongSave(NumpyBackend):
        name = "wrong_save"

        def save(self, model, path):
            bundle = super().get_weights(model, model.plan)
            bundle.layers["fc1"]["bias"] += 1
            write_bundle(path, bundle, model.plan)


    class NoInput(NumpyBackend):
        name = "no_input"

        def activations(self, model, plan, images):
            outputs = super().activations(model, plan, images)
            del outputs["input_layer"]
            return outputs


    class Misshaped(NumpyBackend):
        name = "misshaped"

        def activations(self, model, plan, images):
            outputs = super().activations(model, plan, images)
            outputs["block1_pool"] = outputs["block1_pool"][:, :-1]
            outputs["fc1"] = outputs["fc1"].astype(np.float64)
            outputs["logits"] = outputs["predictions"]
            return outputs


    class Correct(NumpyBackend):
        name = "a_backend_with_a_long_name"
"""
NAMES = {
    "zeros_predict": "ZerosPredict",
    "zeros_weights": "ZerosWeights",
    "wrong_save": "WrongSave",
    "no_input": "NoInput",
    "misshaped": "Misshaped",
    "a_backend_with_a_long_name": "Correct",
}
SPEC = "name: small\nlayers: [conv3-4, maxpool, conv3-8, maxpool]\ninput_shape: [32, 32, 3]\nfc: [16]\nclasses: 10\n"


@pytest.fixture(scope="module")
def wrong(module_tmp) -> tuple[Path, dict[str, str]]:
    """(a small spec, the environment where the wrong backends are installed)."""
    folder = module_tmp.mktemp("wrong")
    entry_points = {name: f"wrong_backends:{cls}" for name, cls in NAMES.items()}
    install_plugin(folder / "site", "wrong_backends", entry_points, {"wrong_backends": WRONG})
    spec = folder / "small.yaml"
    spec.write_text(SPEC)
    return spec, with_site(folder / "site")


def verify(wrong, backend: str, *more: str):
    spec, env = wrong
    return run_vggspec("verify", spec, "--backends", f"numpy,{backend}", *more, env=env, timeout=300)


@pytest.mark.parametrize(
    "backend, check, detail",
    [
        ("zeros_predict", "predict", "differs from its last layer's activation: relative difference 7.36e-01"),
        ("zeros_predict", "predict = numpy", "differs from numpy's predict: relative difference 7.36e-01"),
        ("zeros_weights", "get_weights", "block1_conv1/kernel: 108 of 108 values differ from those set"),
        ("wrong_save", "save", "the .safetensors file read back: fc1/bias: 16 of 16 values differ from those set"),
    ],
)
def test_a_broken_path_fails_its_check_by_name_while_every_layer_agrees(wrong, backend, check, detail):
    result = verify(wrong, backend, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["first_divergent_layer"] is None  # the layers say nothing is wrong
    failed = [(c["backend"], c["check"], c["detail"]) for c in report["checks"] if not c["ok"]]
    assert (backend, check, detail) in failed
    assert all(name == backend for name, _, _ in failed)
    text = verify(wrong, backend)
    assert text.returncode == 1
    assert f"FAILED: {backend}: {check}: {detail}" in text.stdout.splitlines()
    row = next(line for line in text.stdout.splitlines() if line.split()[:2] == [backend, check.split()[0]])
    assert "FAILED" in row.split()


def test_a_correct_backend_passes_every_check_and_the_tables_widen_for_its_name(wrong):
    text = verify(wrong, "a_backend_with_a_long_name")
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    parameters = lines[lines.index("parameters (trainable + non-trainable):") + 1 :][:3]
    assert [line.split()[0] for line in parameters] == ["plan", "numpy", "a_backend_with_a_long_name"]
    assert len({line.index(" = ") for line in parameters}) == 1  # the counts in one column
    header = next(line for line in lines if line.startswith("backend "))
    rows = lines[lines.index(header) + 1 :][:7]
    assert [row.split()[0] for row in rows] == ["numpy"] * 3 + ["a_backend_with_a_long_name"] * 4
    assert len({row.index(" ok ") for row in rows}) == 1
    assert lines[-1] == "OK: the backends agree on every layer and on the parameter counts"


@pytest.mark.parametrize(
    "backend, received",
    [
        ("no_input", "missing input_layer"),
        (
            "misshaped",
            "not in the plan: logits; block1_pool of shape (2, 15, 16, 4) instead of (2, 16, 16, 4); "
            "fc1 of dtype float64 instead of float32",
        ),
    ],
)
def test_activations_that_miss_add_or_misshape_layers_are_one_line(wrong, backend, received):
    expected = (
        f"backend {backend!r}: activations: expected every layer of the plan small, each (N, *output_shape) "
        f"in float32, received {received}"
    )
    text = verify(wrong, backend)
    assert (text.returncode, text.stdout.strip()) == (1, f"FAILED: {expected}")
    assert "Traceback" not in text.stderr
    result = verify(wrong, backend, "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "ok": False,
        "spec": "small",
        "backends": ["numpy", backend],
        "failed": expected,
    }
