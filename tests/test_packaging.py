"""One distribution ships the core and the built-in backends; the extras add frameworks only.

The slow tests build the wheel with pip, install it into fresh virtual environments
(dependencies from the package index, torch from the CPU wheel that constraints.txt
pins) and run ``vggspec`` from a folder outside the repository, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, run_in_own_session

CONSTRAINTS = REPO / "constraints.txt"
INSTALL_TIMEOUT_S = 1200


def _pip(environment: Path, *args: str) -> None:
    result = run_in_own_session(
        [environment / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        INSTALL_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _vggspec(environment: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed command with a clean environment: no PYTHONPATH pointing into the repository."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = run_in_own_session([environment / "bin" / "vggspec", *map(str, args)], 600, env=env, cwd=cwd)
    return subprocess.CompletedProcess(args, result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def wheel(module_tmp) -> Path:
    """The wheel, built from a copy of the source (setuptools writes build/ beside what it builds)."""
    out = module_tmp.mktemp("wheel")
    source = out / "source"
    top = {".git", ".venv", "build", "dist", ".pytest_cache", "runs", "data"}  # runs/, data/: finetune's output

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {
            n for n in names if n == "__pycache__" or n.endswith(".egg-info") or (Path(folder) == REPO and n in top)
        }

    shutil.copytree(REPO, source, symlinks=True, ignore=ignore)
    result = run_in_own_session(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, source], INSTALL_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("vggspec-*.whl")
    return built


def _fresh_environment(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path


@pytest.mark.slow
def test_the_wheel_holds_the_backends_and_data_and_no_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "vggspec/__init__.py",
        "vggspec_keras/__init__.py",
        "vggspec_torch/__init__.py",
        "vggspec_onnx/__init__.py",
        "vggspec_numpy/__init__.py",
        "vggspec_numpy/layers.py",
        "vggspec/py.typed",
        "vggspec_numpy/py.typed",
        "vggspec/specs/vgg.yaml",
        "vggspec/specs/vgg16.yaml",
        "vggspec/specs/examples/small64.yaml",
        "vggspec/specs/schema/spec.schema.json",
        "vggspec/specs/schema/table.schema.json",
        "vggspec/data_files/imagenet_class_index.json",
    ):
        assert expected in names, expected
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/")) or "/tests/" in name]
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    registered = [line for line in text.splitlines()[text.splitlines().index("[vggspec.backends]") + 1 :] if line]
    assert registered == [
        "keras = vggspec_keras:KerasBackend",
        "numpy = vggspec_numpy:NumpyBackend",
        "onnx = vggspec_onnx:OnnxBackend",
        "torch = vggspec_torch:TorchBackend",
    ]
    metadata = zipfile.ZipFile(wheel).read(entry_points.replace("entry_points.txt", "METADATA")).decode()
    assert "vggspec-torch" not in metadata and "vggspec-keras" not in metadata


@pytest.mark.slow
def test_the_wheel_without_torch_gives_the_hint_that_then_works(wheel, tmp_path):
    """Without any framework the numpy backend builds a weight file and predicts with it; the hint for torch,
    word for word, installs it; then numpy and torch verify VGG16 against each other."""
    environment = _fresh_environment(tmp_path / "env")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _pip(environment, str(wheel))
    from PIL import Image

    Image.new("RGB", (300, 200), (200, 120, 40)).save(outside / "cat.png")
    built = _vggspec(environment, "build", "vgg16", "--backend", "numpy", "--out", "vgg16.safetensors", cwd=outside)
    assert built.returncode == 0, built.stderr
    predicted = _vggspec(
        environment, "predict", "vgg16", "cat.png", "--backend", "numpy", "--weights", "vgg16.safetensors", cwd=outside
    )
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0] == "vgg16: preprocessing caffe: the spec's (vgg16.safetensors does not say)"
    assert lines[1] == "cat.png" and predicted.stdout.count("(index ") == 5
    default = _vggspec(environment, "predict", "vgg16", "cat.png", "--weights", "vgg16.safetensors", cwd=outside)
    assert default.stdout == predicted.stdout  # no framework: numpy is the backend a command takes
    listing = _vggspec(environment, "list", cwd=outside)
    assert listing.returncode == 0 and any(line.startswith("vgg16 ") for line in listing.stdout.splitlines())
    summary = _vggspec(environment, "summary", "vgg16", "--format", "json", cwd=outside)
    assert summary.returncode == 0 and json.loads(summary.stdout)["total_params"] == 138_357_544
    missing = _vggspec(environment, "build", "vgg16", "--backend", "torch", "--out", "m.pt", cwd=outside)
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        "error: backend 'torch' needs torch, which is not installed: pip install \"vggspec[torch]\"",
    )
    assert not (outside / "m.pt").exists()
    # the hint, word for word (the constraints file only picks the CPU wheel of torch)
    _pip(environment, "vggspec[torch]", "--constraint", str(CONSTRAINTS))
    built = _vggspec(environment, "build", "vgg11", "--backend", "torch", "--out", "vgg11.pt", cwd=outside)
    assert built.returncode == 0, built.stderr
    assert "vgg11.pt: vgg11 (torch), 132,863,336 parameters" in built.stdout
    backends = _vggspec(environment, "backends", cwd=outside)
    rows = {line.split()[0]: line for line in backends.stdout.splitlines()[1:]}
    assert rows["torch"].split()[1] == "ok" and rows["numpy"].split()[1] == "ok"
    assert rows["keras"].split()[1:] == ["missing", "framework", "pip", "install", '"vggspec[keras]"']
    verified = _vggspec(environment, "verify", "vgg16", "--backends", "numpy,torch", "--images", "1", cwd=outside)
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    assert verified.stdout.rstrip().endswith("OK: the backends agree on every layer and on the parameter counts")
    rows = [line.split()[:3] for line in verified.stdout.splitlines()]
    assert ["torch", "save", "ok"] in rows and ["numpy", "save", "ok"] in rows


@pytest.mark.slow
def test_the_wheel_with_keras_builds_a_keras_model(wheel, tmp_path):
    environment = _fresh_environment(tmp_path / "env")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _pip(environment, f"vggspec[keras] @ {wheel.as_uri()}", "--constraint", str(CONSTRAINTS))
    built = _vggspec(environment, "build", "vgg11", "--backend", "keras", "--out", "vgg11.keras", cwd=outside)
    assert built.returncode == 0, built.stderr
    assert "vgg11.keras: vgg11 (keras), 132,863,336 parameters" in built.stdout
    assert zipfile.is_zipfile(outside / "vgg11.keras")


# The README's commands that need neither a clone, nor a download, nor Keras: run word for word below.
README_EXAMPLES = [
    "vggspec list",
    "vggspec verify vgg16",
    "vggspec build vgg16 --backend torch --out vgg16.pt",
    "vggspec codegen vgg16 --framework keras --out vgg16_keras.py",
    "vggspec features vgg19 cat.png --layers block1_conv1,block2_conv1,block3_conv1,block4_conv1,block4_conv2,"
    "block5_conv1 --backend torch",
    "vggspec data shapes --dest shapes",
    "vggspec finetune small64 --data shapes --backend torch --batch-size 16 --out run-torch",
    "vggspec evaluate run-torch --data shapes",
]


@pytest.mark.slow
def test_the_readmes_examples_run_from_an_install_of_the_wheel(wheel, tmp_path):
    """As the README says to install it (torch, and onnx as a second backend for verify), from a folder outside
    the repository: every example above is in the README as written, and runs."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [line.removeprefix("$ ") for line in readme.splitlines() if line.startswith(("$ vggspec", "vggspec "))]
    for example in README_EXAMPLES:
        assert any(command.split("#")[0].strip() == example for command in commands), example
    environment = _fresh_environment(tmp_path / "env")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _pip(environment, f"vggspec[torch,onnx] @ {wheel.as_uri()}", "--constraint", str(CONSTRAINTS))
    from PIL import Image

    Image.new("RGB", (300, 200), (200, 120, 40)).save(outside / "cat.png")  # the user's picture
    for example in README_EXAMPLES:
        done = _vggspec(environment, *example.split()[1:], cwd=outside)
        assert done.returncode == 0, (example, done.stderr[-3000:])
    assert (outside / "vgg16.pt").stat().st_size > 500_000_000
    assert "accuracy" in done.stdout and "confusion matrix" in done.stdout


# A plugin for a framework that is not installed here, written from the README's "Writing a backend": every
# member typed as vggspec types it, so that mypy holds the class to vggspec.backends.Backend
PLUGIN = '''
    """vggspec's plan on jaxish, a framework imported only when a model is built."""

    from __future__ import annotations

    import importlib
    from typing import Any, Optional

    import numpy as np

    from vggspec.backends import Backend
    from vggspec.planner.lower import Plan
    from vggspec.weights.bundle import WeightBundle

    Model = dict[str, Any]


    class JaxishBackend:
        name = "jaxish"
        requires = ("jaxish_framework",)
        install = "pip install vggspec-jaxish[cpu]"
        save_suffix = ".jaxish"

        def build(self, plan: Plan) -> Model:
            return {"plan": plan, "framework": importlib.import_module("jaxish_framework"), "arrays": {}}

        def count_params(self, model: Model) -> tuple[int, int]:
            plan: Plan = model["plan"]
            return plan.trainable_params, plan.non_trainable_params

        def get_weights(self, model: Model, plan: Plan) -> WeightBundle:
            return WeightBundle({name: dict(weights) for name, weights in model["arrays"].items()})

        def set_weights(self, model: Model, plan: Plan, bundle: WeightBundle) -> None:
            model["arrays"].update(bundle.layers)

        def predict(self, model: Model, images: np.ndarray) -> np.ndarray:
            plan: Plan = model["plan"]
            return self.activations(model, plan, images)[plan.layers[-1].name]

        def activations(self, model: Model, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
            outputs: dict[str, np.ndarray] = model["framework"].run(plan, model["arrays"], images)
            return outputs

        def save(self, model: Model, path: str) -> Optional[str]:
            model["framework"].save(model["arrays"], path)
            return None


    def registered() -> Backend:
        return JaxishBackend()
'''
PLUGIN_PROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "vggspec-jaxish"
version = "0.1"

[project.entry-points."vggspec.backends"]
jaxish = "vggspec_jaxish:JaxishBackend"
"""


@pytest.mark.slow
def test_a_plugin_written_from_the_readme_type_checks_against_the_wheel_and_names_its_install(wheel, tmp_path):
    """mypy --strict passes the plugin against the installed wheel's types (py.typed), and fails one that lacks
    a member or types one otherwise; installed, its missing framework prints its own install command."""
    import textwrap

    environment = _fresh_environment(tmp_path / "env")
    outside = tmp_path / "elsewhere"
    plugin = outside / "vggspec-jaxish"
    (plugin / "vggspec_jaxish").mkdir(parents=True)
    source = textwrap.dedent(PLUGIN)
    (plugin / "vggspec_jaxish" / "__init__.py").write_text(source)
    (plugin / "pyproject.toml").write_text(PLUGIN_PROJECT)
    wrong = outside / "wrong"
    wrong.mkdir()
    (wrong / "lacking.py").write_text(source.replace('    install = "pip install vggspec-jaxish[cpu]"\n', ""))
    (wrong / "mistyped.py").write_text(source.replace('requires = ("jaxish_framework",)', "requires = 3"))
    _pip(environment, str(wheel), "mypy", "--constraint", str(CONSTRAINTS))
    mypy = [environment / "bin" / "python", "-m", "mypy", "--strict", "--no-incremental"]
    checked = run_in_own_session([*mypy, plugin / "vggspec_jaxish"], 600, cwd=outside)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    for name, expected in (
        ("lacking", ['"JaxishBackend" is missing following "Backend" protocol member:', "note:     install"]),
        ("mistyped", ['requires: expected "Sequence[str]", got "int"']),
    ):
        refused = run_in_own_session([*mypy, f"{name}.py"], 600, cwd=wrong)
        assert refused.returncode == 1, (name, refused.stdout[-3000:])
        assert all(line in refused.stdout for line in expected), (name, refused.stdout[-3000:])
    _pip(environment, "--no-deps", str(plugin))
    listing = _vggspec(environment, "backends", cwd=outside)
    rows = {line.split()[0]: line.split()[1:] for line in listing.stdout.splitlines()[1:]}
    assert rows["jaxish"] == ["missing", "framework", "pip", "install", "vggspec-jaxish[cpu]"], listing.stdout
    missing = _vggspec(environment, "summary", "vgg16", "--backend", "jaxish", cwd=outside)
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        "error: backend 'jaxish' needs jaxish_framework, which is not installed: pip install vggspec-jaxish[cpu]",
    )
