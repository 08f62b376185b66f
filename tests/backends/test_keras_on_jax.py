"""The Keras backend under KERAS_BACKEND=jax: every command Keras runs, in one JAX process.

Keras fixes its framework when first imported, so the commands run in a process of their own
(the CLI's ``main``, called once per command) and report what they printed; this process (Keras on
TensorFlow) checks the numbers against its own. The Keras test files themselves also pass under
``KERAS_BACKEND=jax`` (``make test-keras-jax``; README "Testing").
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec.cli import main
from vggspec.parity.inputs import random_bundle
from vggspec.weights.formats import write_bundle

from cli_cases import tiny_spec
from conftest import REPO, run_in_own_session
from image_sets import make_image_set

pytest.importorskip("jax")
pytest.importorskip("keras")

# Each command's status and stdout, as JSON lines; argv[1]: the commands, a JSON list of argument lists.
COMMANDS_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys
    import keras
    from vggspec.cli import main

    print(json.dumps({"keras_backend": keras.backend.backend()}), flush=True)
    for argv in json.loads(sys.argv[1]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(argv)
        print(json.dumps({"command": argv[0], "status": status, "stdout": out.getvalue()}), flush=True)
""")


def rows(run: Path) -> list[dict[str, float]]:
    with open(run / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


def test_every_keras_command_runs_under_jax(tmp_path):
    spec = tiny_spec(tmp_path)
    plan = vggspec.plan(str(spec))
    weights = tmp_path / "w.safetensors"
    write_bundle(weights, random_bundle(plan, seed=5), plan)
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    data = make_image_set(tmp_path / "data", size=32, train_per_class=12, val_per_class=4, seed=3)
    common = ["--data", str(data), "--backend", "keras", "--epochs", "2", "--batch-size", "8", "--augment", "none"]
    frozen = ["--freeze", "block2_pool", "--weights", str(weights), "--cache-dir", str(tmp_path / "cache")]
    commands = [
        ["build", str(spec), "--backend", "keras", "--out", str(tmp_path / "m.keras")],
        ["verify", str(spec), "--backends", "keras,numpy", "--weights", str(weights), "--json"],
        ["predict", str(spec), str(image), "--weights", str(weights), "--backend", "keras", "--json"],
        ["features", str(spec), str(image), "--layers", "block2_conv1", "--backend", "keras", "--json"],
        ["finetune", str(spec), *common, "--out", str(tmp_path / "scratch")],
        ["finetune", str(spec), *common, *frozen, "--out", str(tmp_path / "uncached")],
        ["finetune", str(spec), *common, *frozen, "--cache-features", "--out", str(tmp_path / "cached")],
        ["evaluate", str(tmp_path / "cached"), "--json"],
    ]
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'backends'}"}
    result = run_in_own_session([sys.executable, "-c", COMMANDS_SCRIPT, json.dumps(commands)], 300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines[0] == {"keras_backend": "jax"}
    done = {line["command"] + str(index): line for index, line in enumerate(lines[1:])}
    assert [line["status"] for line in done.values()] == [0] * len(commands), result.stderr[-3000:]
    outputs = [line["stdout"] for line in done.values()]

    # build: the saved model loads under TensorFlow with the plan's layers
    keras = pytest.importorskip("keras")
    assert keras.backend.backend() == "tensorflow"
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in plan.layers]
    # verify: Keras on JAX against the NumPy reference
    verified = json.loads(outputs[1])
    assert verified["ok"] is True and verified["backends"] == ["keras", "numpy"]
    # predict: the same scores as Keras on TensorFlow, in this process
    here = io.StringIO()
    with contextlib.redirect_stdout(here):
        assert main(commands[2]) == 0
    on_jax, on_tensorflow = json.loads(outputs[2])[str(image)], json.loads(here.getvalue())[str(image)]
    assert [entry["index"] for entry in on_jax] == [entry["index"] for entry in on_tensorflow]
    np.testing.assert_allclose(
        [entry["score"] for entry in on_jax], [entry["score"] for entry in on_tensorflow], rtol=1e-4, atol=1e-6
    )
    # features: the layer's shape
    features = json.loads(outputs[3])
    assert features["backend"] == "keras"
    assert [(layer["layer"], layer["shape"]) for layer in features["layers"]] == [("block2_conv1", [1, 16, 16, 8])]
    # finetune: from scratch, frozen, and on cached features, which trains as the uncached run does
    for run in ("scratch", "uncached", "cached"):
        assert [row["epoch"] for row in rows(tmp_path / run)] == [1.0, 2.0]
        assert (tmp_path / run / "best.weights.h5").is_file()
    # (with the default two data workers: Keras' PyDataset read by two threads on JAX trained its first
    # batch last, and the uncached losses differed by 0.1; vggspec_keras.training.loading_threads)
    for cached_row, uncached_row in zip(rows(tmp_path / "cached"), rows(tmp_path / "uncached")):
        for key in cached_row:
            assert cached_row[key] == pytest.approx(uncached_row[key], abs=2e-3), key
    # evaluate: the cached run's best epoch, on all 8 validation images
    evaluated = json.loads(outputs[7])
    assert evaluated["images"] == 8
    best = json.loads((tmp_path / "cached" / "run.json").read_text())["best"]
    assert evaluated["accuracy"] == pytest.approx(best["val_accuracy"], abs=1e-6)
