"""Backends are plugins: third-party ones are found, broken ones warn, missing frameworks give a hint.

Each test installs real plugins the way pip would (a ``*.dist-info`` folder with
``entry_points.txt`` on the path) and runs vggspec in a fresh process.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import run_vggspec
from plugin_sites import install_plugin, with_site

pytest.importorskip("torch")

# A backend that makes the classic converter mistake: fc1 transposed without the Flatten reorder.
NAIVE_TORCH = """
    import numpy as np
    from vggspec_torch import TorchBackend
    from vggspec.weights.bundle import WeightBundle


    class NaiveTorch(TorchBackend):
        name = "naive_torch"

        def set_weights(self, model, plan, bundle):
            super().set_weights(model, plan, bundle)
            import torch
            kernel = bundle.layers["fc1"]["kernel"]
            with torch.no_grad():
                model.classifier[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
"""

BROKEN = "raise ImportError('this plugin is broken on purpose')\n"

# A backend of a framework that is not installed, naming the command that installs it (its own distribution)
NEEDS_JAX = """
    class JaxBackend:
        name = "jaxlike"
        requires = ("a_framework_that_is_not_installed",)
        install = 'pip install "vggspec-jax[cpu]"'

        def build(self, plan): ...
        def count_params(self, model): ...
        def get_weights(self, model, plan): ...
        def set_weights(self, model, plan, bundle): ...
        def predict(self, model, images): ...
        def activations(self, model, plan, images): ...
        def save(self, model, path): ...
"""
# The same without three members of the contract, and one registered under another name than its own
LACKING = NEEDS_JAX.replace('name = "jaxlike"', 'name = "lacking"').replace("        def predict", "        # predict")
LACKING = LACKING.replace("        def activations", "        # activations").replace(
    "        install =", "        # install"
)
MISNAMED = NEEDS_JAX.replace('requires = ("a_framework_that_is_not_installed",)', 'requires = ("numpy",)')


@pytest.fixture
def plugins(tmp_path):
    site = tmp_path / "site"
    install_plugin(site, "naive_backend", {"naive_torch": "naive_torch:NaiveTorch"}, {"naive_torch": NAIVE_TORCH})
    install_plugin(site, "broken_backend", {"broken": "broken_plugin:Backend"}, {"broken_plugin": BROKEN})
    install_plugin(site, "jaxlike_backend", {"jaxlike": "jaxlike:JaxBackend"}, {"jaxlike": NEEDS_JAX})
    return with_site(site)


def small_spec(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(
        "name: small\nlayers: [conv3-8, maxpool, conv3-16, conv3-16, maxpool]\n"
        "input_shape: [32, 32, 3]\nfc: [32, 32]\nclasses: 10\n"
    )
    return path


def test_verify_names_the_first_diverging_layer(tmp_path, plugins):
    result = run_vggspec("verify", small_spec(tmp_path), "--backends", "torch,naive_torch", "--json", env=plugins)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["first_divergent_layer"] == "fc1"
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert layers["block2_pool"]["max_abs_diff"] == 0.0 and layers["flatten"]["ok"]
    assert layers["fc1"]["rel_diff"] > 1e-2
    assert report["params"]["naive_torch"]["equal_to_plan"] is True


def test_third_party_backend_agrees_when_correct(tmp_path, plugins):
    result = run_vggspec("verify", small_spec(tmp_path), "--backends", "naive_torch,keras", "--json", env=plugins)
    # the naive plugin is wrong only in fc1, so it must diverge there and nowhere before
    report = json.loads(result.stdout)
    assert report["first_divergent_layer"] == "fc1"
    assert all(layer["ok"] for layer in report["layers"][: [x["name"] for x in report["layers"]].index("fc1")])


@pytest.mark.slow  # 21 s
def test_three_way_verify_names_the_odd_one_out(tmp_path, plugins):
    """With a third backend, verify tells which of two disagreeing backends is wrong: the naive plugin,
    at fc1, where keras and onnx agree."""
    pytest.importorskip("keras")
    pytest.importorskip("onnxruntime")
    arguments = ("verify", small_spec(tmp_path), "--backends", "keras,naive_torch,onnx")
    result = run_vggspec(*arguments, "--json", env=plugins)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["first_divergent_layer"], report["odd_one_out"]) == ("fc1", "naive_torch")
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert layers["flatten"]["ok"] and layers["flatten"]["disagreeing_pairs"] == []
    assert layers["fc1"]["disagreeing_pairs"] == [["keras", "naive_torch"], ["naive_torch", "onnx"]]
    assert layers["fc1"]["odd_one_out"] == "naive_torch" and "naive_torch" in layers["fc1"]["pair"]
    assert layers["fc1"]["rel_diff"] > 1e-2
    assert all(report["params"][name]["equal_to_plan"] for name in ("keras", "naive_torch", "onnx"))
    text = run_vggspec(*arguments, env=plugins)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[-1] == "FAILED: first diverging layer: fc1 (naive_torch is the odd one out: keras and onnx agree)"
    (fc1,) = [line for line in lines if line.startswith("fc1 ")]
    assert fc1.endswith("DIVERGES (naive_torch)")


def test_broken_plugin_warns_and_others_work(tmp_path, plugins):
    listing = run_vggspec("backends", env=plugins)
    assert listing.returncode == 0, listing.stderr
    assert "backend 'broken' (broken_plugin:Backend) failed to load: this plugin is broken on purpose" in listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert set(rows) == {"broken", "jaxlike", "keras", "naive_torch", "numpy", "onnx", "torch"}
    assert "ok" in rows["torch"] and "ok" in rows["keras"] and "ok" in rows["naive_torch"] and "ok" in rows["numpy"]
    assert rows["jaxlike"].split()[1:] == ["missing", "framework", "pip", "install", '"vggspec-jax[cpu]"']
    result = run_vggspec("summary", small_spec(tmp_path), "--backend", "torch", env=plugins)
    assert result.returncode == 0, result.stderr
    assert "(equal to the plan)" in result.stdout
    broken = run_vggspec("summary", small_spec(tmp_path), "--backend", "broken", env=plugins)
    assert broken.returncode == 2
    assert "this plugin is broken on purpose" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_unknown_backend_lists_the_installed_ones_that_import(tmp_path, plugins):
    """The broken plugin is warned about, and not offered as one to use."""
    result = run_vggspec("summary", "vgg16", "--backend", "jax", env=plugins)
    assert result.returncode == 2
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith("warning: vggspec backend 'broken' (broken_plugin:Backend) failed to load")
    assert error == (
        "error: backend 'jax': expected one of the installed backends "
        "(jaxlike, keras, naive_torch, numpy, onnx, torch), received 'jax'"
    )


def test_missing_framework_gives_the_plugins_own_install_command(tmp_path, plugins):
    result = run_vggspec("summary", "vgg16", "--backend", "jaxlike", env=plugins)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: backend 'jaxlike' needs a_framework_that_is_not_installed, which is "
        'not installed: pip install "vggspec-jax[cpu]"'
    )


def test_a_plugin_lacking_members_of_the_contract_is_refused_and_a_misnamed_one_warned(tmp_path):
    site = tmp_path / "site"
    install_plugin(site, "lacking_backend", {"lacking": "lacking:JaxBackend"}, {"lacking": LACKING})
    install_plugin(site, "misnamed_backend", {"misnamed": "misnamed:JaxBackend"}, {"misnamed": MISNAMED})
    listing = run_vggspec("backends", env=with_site(site))
    assert listing.returncode == 0, listing.stderr
    warnings = listing.stderr.strip().splitlines()
    assert (
        "warning: vggspec backend 'lacking' (lacking:JaxBackend) failed to load: expected the members of "
        "vggspec.backends.Backend, received an object without install, predict, activations"
    ) in warnings
    assert (
        "warning: vggspec backend 'misnamed' (misnamed:JaxBackend) calls itself 'jaxlike': expected the name it is "
        "registered under, which is the one vggspec uses"
    ) in warnings
    rows = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[1:]}
    assert (rows["lacking"], rows["misnamed"]) == ("broken", "ok")


@pytest.mark.parametrize(
    "framework, expected",
    [
        (
            "openvino",
            "error: backend 'keras': keras runs on openvino (KERAS_BACKEND says so), which is not installed: "
            "pip install openvino, or set KERAS_BACKEND to an installed one (tensorflow with vggspec[keras])",
        ),
        (
            "tensorfow",
            "error: backend 'keras': KERAS_BACKEND: expected one of tensorflow, torch, jax, numpy, openvino, "
            "received 'tensorfow'",
        ),
    ],
)
def test_keras_set_to_a_missing_framework_says_so_in_one_line(tmp_path, framework, expected):
    pytest.importorskip("keras")
    if framework == "openvino":
        import importlib.util

        if importlib.util.find_spec("openvino") is not None:
            pytest.skip("openvino is installed here")
    out = tmp_path / "m.keras"
    result = run_vggspec("build", "vgg11", "--backend", "keras", "--out", out, env={"KERAS_BACKEND": framework})
    assert (result.returncode, result.stderr.strip()) == (2, expected)
    assert not out.exists()
    listing = run_vggspec("backends", env={"KERAS_BACKEND": framework})
    assert listing.returncode == 0
    assert any(line.split()[:3] == ["keras", "cannot", "run"] for line in listing.stdout.splitlines()), listing.stdout


def test_a_plugin_distribution_installed_with_pip_is_listed(tmp_path):
    """A third-party backend is a distribution of its own registering the entry point: pip installs it."""
    import subprocess
    import sys

    project = tmp_path / "vggspec-echo"
    (project / "vggspec_echo").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "vggspec-echo"
        version = "0.1"

        [project.entry-points."vggspec.backends"]
        echo = "vggspec_echo:EchoBackend"
    """)
    )
    source = textwrap.dedent(NEEDS_JAX).replace("JaxBackend", "EchoBackend").replace('"jaxlike"', '"echo"')
    source = source.replace("vggspec-jax[cpu]", "vggspec-echo")
    (project / "vggspec_echo" / "__init__.py").write_text(source)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(project),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "vggspec_echo-0.1.dist-info" / "entry_points.txt").is_file()
    listing = run_vggspec("backends", env=with_site(target))
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split(None, 1)[1] for line in listing.stdout.splitlines()[1:]}
    assert set(rows) == {"echo", "keras", "numpy", "onnx", "torch"}
    assert rows["echo"].split() == ["missing", "framework", "pip", "install", '"vggspec-echo"']


@pytest.mark.slow  # 19 s
def test_commands_default_to_a_backend_that_can_run_here(tmp_path):
    """With Keras unable to run (KERAS_BACKEND names a framework that is not installed, as an install of
    vggspec[torch] alone has none), predict, features and verify use the backends that can: no flag needed."""
    pytest.importorskip("onnxruntime")
    import importlib.util

    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("openvino is installed here (vggspec[all] installs jax, which Keras can run on)")
    import numpy as np
    from PIL import Image

    import vggspec
    from vggspec.parity.inputs import random_bundle
    from vggspec.weights.formats import write_bundle

    from cli_cases import tiny_spec

    spec = tiny_spec(tmp_path)
    plan = vggspec.plan(str(spec))
    weights = tmp_path / "w.safetensors"
    write_bundle(weights, random_bundle(plan, seed=3), plan)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    without_keras = {"KERAS_BACKEND": "openvino"}
    predicted = run_vggspec("predict", spec, image, "--weights", weights, "--json", env=without_keras)
    assert predicted.returncode == 0, predicted.stderr
    features = run_vggspec("features", spec, image, "--layers", "block1_conv1", "--json", env=without_keras)
    assert features.returncode == 0 and json.loads(features.stdout)["backend"] == "torch", features.stderr
    verified = run_vggspec("verify", spec, "--json", env=without_keras)
    assert verified.returncode == 0 and json.loads(verified.stdout)["backends"] == ["torch", "onnx"], verified.stderr
    everything = run_vggspec("verify", spec, "--json")  # Keras can run: it is the first choice
    assert json.loads(everything.stdout)["backends"] == ["keras", "torch"]


def test_fewer_usable_backends_than_a_comparison_needs_is_one_line(monkeypatch):
    from vggspec import backends

    monkeypatch.setattr(backends, "usable_backends", lambda: ["torch"])
    with pytest.raises(backends.BackendError) as error:
        backends.default_backends()
    assert str(error.value) == (
        "backends: expected 2 backends that can run here to compare, received only torch (install another: pip "
        'install "vggspec[keras]" or "vggspec[onnx]")'
    )
    assert error.value.setting == "backends"


def test_without_a_framework_commands_default_to_numpy_and_training_to_a_backend_that_can_train(monkeypatch):
    """numpy is the last choice, and the only one left without a framework; finetune's default must train, so
    it stays keras (whose error says what to install)."""
    from vggspec import backends
    from vggspec.training.protocol import TrainingBackend

    assert backends.usable_backends()[-1] == "numpy"
    assert "numpy" not in backends.usable_backends(TrainingBackend)
    keras_missing = ("keras", "missing framework", 'pip install "vggspec[keras]"')
    monkeypatch.setattr(backends, "backend_status", lambda: [keras_missing, ("numpy", "ok", "vggspec_numpy")])
    assert (backends.default_backend(), backends.default_backend(TrainingBackend)) == ("numpy", "keras")
