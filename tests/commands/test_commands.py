"""The commands that put the pieces together: build, verify, predict (real Keras, real torch)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec.cli import error_text, make_parser
from vggspec.errors import DataError
from vggspec.parity.inputs import random_bundle
from vggspec.weights.formats import write_bundle

from cli_cases import BACKENDS, ONE_THREAD, files_under, one_line, tiny_spec
from conftest import slow_for

pytest.importorskip("torch")
pytest.importorskip("keras")

REPOSITORY = Path(__file__).resolve().parents[2]

SMALL_YAML = (
    "name: small\nlayers: [conv3-8, conv3-8, maxpool, conv3-16, maxpool]\n"
    "input_shape: [32, 32, 3]\nfc: [32, 32]\nclasses: {classes}\n"
)


def small_spec(tmp_path: Path, classes: int = 10) -> Path:
    path = tmp_path / f"small{classes}.yaml"
    path.write_text(SMALL_YAML.format(classes=classes))
    return path


def test_build_saves_native_models(cli, tmp_path):
    spec = small_spec(tmp_path)
    plan = vggspec.plan(str(spec))
    keras_out, torch_out = tmp_path / "small.keras", tmp_path / "small.pt"
    result = cli("build", spec, "--backend", "keras", "--out", keras_out)
    assert result.returncode == 0, result.stderr
    assert f"{plan.total_params:,} parameters" in result.stdout
    import keras

    assert keras.models.load_model(keras_out).count_params() == plan.total_params
    result = cli("build", spec, "--backend", "torch", "--out", torch_out)
    assert result.returncode == 0, result.stderr
    import torch

    state = torch.load(torch_out, weights_only=True)
    assert sum(v.numel() for v in state.values()) == plan.total_params
    assert list(state)[:2] == ["features.0.weight", "features.0.bias"]


def test_build_with_weights_refuses_a_file_that_does_not_fit(cli, tmp_path):
    weights = tmp_path / "ten.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(small_spec(tmp_path, 10)))))
    out = tmp_path / "two.pt"
    result = cli("build", small_spec(tmp_path, 2), "--backend", "torch", "--weights", weights, "--out", out)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {weights}: layer predictions: expected kernel of shape (32, 2), received (32, 10)"
    )
    assert not out.exists()
    skipped = cli(
        "build", small_spec(tmp_path, 2), "--backend", "torch", "--weights", weights, "--out", out, "--skip-mismatch"
    )
    assert skipped.returncode == 0, skipped.stderr
    assert "warning: skipped: " in skipped.stderr and "layer predictions" in skipped.stderr
    assert out.exists()


def test_verify_json_on_a_small_spec(cli, tmp_path):
    result = cli("verify", small_spec(tmp_path), "--json", "--images", "3")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plan = vggspec.plan(str(small_spec(tmp_path)))
    assert report["ok"] is True and report["first_divergent_layer"] is None
    assert report["params"]["plan"]["total_params"] == plan.total_params
    assert report["params"]["keras"]["equal_to_plan"] and report["params"]["torch"]["equal_to_plan"]
    assert report["max_abs_diff"] < 1e-4
    assert report["top5_agreement"] == 1.0
    assert [layer["name"] for layer in report["layers"]] == [layer.name for layer in plan.layers]
    assert all(layer["rel_diff"] <= 1e-4 for layer in report["layers"])
    checks = {(check["backend"], check["check"]): check for check in report["checks"]}
    assert list(checks) == [
        ("keras", "predict"),
        ("keras", "get_weights"),
        ("keras", "save"),
        ("torch", "predict"),
        ("torch", "predict = keras"),
        ("torch", "get_weights"),
        ("torch", "save"),
    ]
    assert all(check["ok"] and not check["skipped"] for check in checks.values())
    assert checks["keras", "save"]["detail"] == "the .keras file read back holds the arrays set"


def test_verify_with_a_weight_file_and_real_images(cli, tmp_path):
    spec = small_spec(tmp_path)
    weights = tmp_path / "w.h5"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec)), seed=3), vggspec.plan(str(spec)))
    images = []
    for i, colour in enumerate([(255, 0, 0), (0, 128, 255)]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (40, 50), colour).save(path)
        images.append(path)
    result = cli("verify", spec, "--weights", weights, "--image", *images, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["weights"] == str(weights) and report["images"] == 2 and report["ok"]


@pytest.mark.slow
def test_verify_vgg16_full_size(cli):
    result = cli("verify", "vgg16")
    assert result.returncode == 0, result.stderr
    assert "keras       138,357,544 = 138,357,544 + 0  equal to the plan" in result.stdout
    assert "OK: the backends agree on every layer" in result.stdout


def test_the_numpy_backend_builds_a_weight_file_that_predict_and_features_read(cli, tmp_path):
    spec = small_spec(tmp_path, 3)
    plan = vggspec.plan(str(spec))
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "model.safetensors"
    built = cli("build", spec, "--backend", "numpy", "--out", out)
    assert built.returncode == 0, built.stderr
    count = f"{plan.total_params:,}"
    assert built.stdout.strip() == f"{out}: small (numpy), {count} parameters ({count} trainable; the plan: {count})"
    scores = {}
    for backend in ("numpy", "torch"):
        done = cli("predict", spec, image, "--weights", out, "--backend", backend, "--json")
        assert done.returncode == 0, done.stderr
        scores[backend] = [(row["index"], row["score"]) for row in json.loads(done.stdout)[str(image)]]
    assert [i for i, _ in scores["numpy"]] == [i for i, _ in scores["torch"]]
    assert max(abs(a - b) for (_, a), (_, b) in zip(scores["numpy"], scores["torch"])) < 1e-5
    features = cli("features", spec, image, "--weights", out, "--backend", "numpy", "--layers", "fc1", "--json")
    assert features.returncode == 0 and json.loads(features.stdout)["backend"] == "numpy", features.stderr
    wrong = tmp_path / "model.npz"
    refused = one_line(cli("build", spec, "--backend", "numpy", "--out", wrong))
    assert refused == f"error: {wrong}: expected a file name ending in .safetensors, received '.npz'"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.safetensors", "small3.yaml", "x.png"]


def test_predict_in_both_backends_with_labels_and_imagenet_names(cli, tmp_path):
    spec2, spec1000 = small_spec(tmp_path, 2), small_spec(tmp_path, 1000)
    image = tmp_path / "cat.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(image)
    weights2, weights1000 = tmp_path / "two.safetensors", tmp_path / "thousand.pt"
    write_bundle(weights2, random_bundle(vggspec.plan(str(spec2)), seed=1))
    write_bundle(weights1000, random_bundle(vggspec.plan(str(spec1000)), seed=1), vggspec.plan(str(spec1000)))
    outputs = {}
    for backend in ("keras", "torch"):
        result = cli(
            "predict",
            spec2,
            image,
            "--weights",
            weights2,
            "--backend",
            backend,
            "--labels",
            "cat,dog",
            "--top",
            "2",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        outputs[backend] = json.loads(result.stdout)[str(image)]
    assert [row["label"] for row in outputs["keras"]] == [row["label"] for row in outputs["torch"]]
    assert abs(outputs["keras"][0]["score"] - outputs["torch"][0]["score"]) < 1e-5
    assert abs(sum(row["score"] for row in outputs["keras"]) - 1.0) < 1e-5
    text = cli("predict", spec1000, image, "--weights", weights1000, "--backend", "torch")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    # the header says how the images were fed, and why: the file does not say, so as the spec says
    assert lines[0] == f"small: preprocessing caffe: the spec's ({weights1000} does not say)"
    assert lines[1] == str(image) and len(lines) == 7
    assert lines[2].startswith("  1. n0") or lines[2].startswith("  1. n1")  # wnid and ImageNet name


def test_predict_bad_input(cli, tmp_path):
    spec = small_spec(tmp_path, 2)
    weights = tmp_path / "w.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec))))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    result = cli("predict", spec, broken, "--weights", weights)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(broken) in result.stderr
    labels = cli("predict", spec, broken, "--weights", weights, "--labels", "a,b,c")
    assert labels.returncode == 2
    assert labels.stderr.strip() == "error: --labels: expected 2 names (the spec's classes), received 3"
    for given, message in (("cat,cat", "expected each name once, received 'cat' twice"), (",", "expected 2 non-empty")):
        labels = cli("predict", spec, broken, "--weights", weights, "--labels", given)
        assert labels.returncode == 2 and labels.stderr.startswith(f"error: --labels: {message}"), labels.stderr


def overflowing_weights(spec: Path, path: Path) -> Path:
    """Finite weights whose fc1 overflows float32 on any image: its outputs are infinite, its softmax NaN."""
    plan = vggspec.plan(str(spec))
    bundle = random_bundle(plan, seed=2)
    bundle.layers["fc1"]["kernel"][:] = 1e38
    bundle.layers["fc1"]["bias"][:] = 1e38
    write_bundle(path, bundle, plan)
    return path


def strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity, as JSON itself does."""
    return json.loads(text, parse_constant=lambda word: pytest.fail(f"not JSON: {word}"))


def test_non_finite_outputs_are_said_and_every_json_output_is_strict(cli, tmp_path):
    spec = small_spec(tmp_path, 2)
    weights = overflowing_weights(spec, tmp_path / "huge.safetensors")
    image = tmp_path / "x.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(image)
    done = cli("predict", spec, image, "--weights", weights, "--backend", "torch")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {image}: expected finite scores, received 2 of 2 NaN or infinite "
        "(the weights overflow float32 on this image)"
    ]
    verified = cli("verify", spec, "--weights", weights, "--backends", "torch,onnx", "--json")
    assert verified.returncode == 1, verified.stderr
    report = strict_json(verified.stdout)
    fc1 = next(layer for layer in report["layers"] if layer["name"] == "fc1")
    assert report["ok"] is False and report["first_divergent_layer"] == "fc1"
    assert fc1["ok"] is False and fc1["non_finite"] == ["torch", "onnx"] and fc1["max_abs_diff"] is None
    text = cli("verify", spec, "--weights", weights, "--backends", "torch,onnx")
    assert "FAILED: first diverging layer: fc1 (torch and onnx gave NaN or infinite values)" in text.stdout
    features = cli("features", spec, image, "--weights", weights, "--backend", "torch", "--layers", "fc1", "--json")
    assert features.returncode == 0, features.stderr
    (row,) = strict_json(features.stdout)["layers"]
    assert row["non_finite"] == 32 and row["mean"] is None
    assert "warning: fc1: 32 of 32 values are NaN or infinite" in features.stderr
    summary = strict_json(cli("summary", spec, "--format", "json").stdout)
    assert summary["total_params"] == vggspec.plan(str(spec)).total_params


def test_predict_reads_and_runs_the_images_a_batch_at_a_time(cli, tmp_path):
    spec = small_spec(tmp_path, 10)
    weights = tmp_path / "w.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec)), seed=4))
    images = []
    for index in range(5):
        images.append(tmp_path / f"{index}.png")
        pixels = np.random.default_rng(index).integers(0, 256, (40, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images[-1])
    results = {}
    for batch in (2, 32):
        done = cli(
            "predict", spec, *images, "--weights", weights, "--backend", "torch", "--batch-size", batch, "--json"
        )
        assert done.returncode == 0, done.stderr
        results[batch] = strict_json(done.stdout)
    assert list(results[2]) == [str(image) for image in images]
    for image in images:  # batches of 2, 2 and 1 give each image the scores it gets in one batch of 5
        for ours, theirs in zip(results[2][str(image)], results[32][str(image)]):
            assert ours["index"] == theirs["index"] and abs(ours["score"] - theirs["score"]) < 1e-6
    done = cli("predict", spec, *images, "--weights", weights, "--batch-size", 0)
    assert done.returncode == 2 and done.stderr.startswith("error: --batch-size: expected a positive integer")


def every_option_string() -> set[str]:
    """Every option string of vggspec's command line, the sub-commands' sub-commands included."""
    options: set[str] = set()
    parsers = [make_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += action.choices.values()
            else:
                options.update(action.option_strings)
    return options


def test_only_the_command_line_writes_flags():
    """The library and the backends name a setting (``setting=``, rendered by the command line); no module
    outside vggspec/cli.py and vggspec/commands/ writes one of the command line's options, not even in a
    docstring."""
    options = every_option_string()
    assert {"--val-fraction", "--dest", "--layers", "--resume", "--weights", "--json"} <= options
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(map(re.escape, sorted(options, key=len, reverse=True))) + r")(?![\w-])"
    )
    library = [
        path
        for path in sorted((REPOSITORY / "vggspec").rglob("*.py"))
        if path.relative_to(REPOSITORY).parts[:2] != ("vggspec", "commands")
        and path != REPOSITORY / "vggspec" / "cli.py"
    ]
    found = [
        f"{path.relative_to(REPOSITORY)}:{number}: {match.group(1)}"
        for path in [*library, *sorted((REPOSITORY / "backends").rglob("*.py"))]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in pattern.finditer(line)
    ]
    assert not found, "flags written outside the command line:\n" + "\n".join(found)


def test_the_command_line_shows_a_setting_named_in_backticks_as_its_flag():
    flags = {"val_fraction": "--val-fraction", "dest": "--dest"}
    error = DataError(
        "a.zip: expected more, received 1 (`val_fraction` 0.2); use a `val_fraction` nearer 0.5", setting="val_fraction"
    )
    assert (
        error_text(error, flags)
        == "error: a.zip: expected more, received 1 (--val-fraction 0.2); use a --val-fraction nearer 0.5"
    )
    assert error_text(DataError("dest d: taken (choose another `dest`)", setting="dest"), flags) == (
        "error: --dest d: taken (choose another --dest)"
    )
    # only the error's own setting, and only where the command has a flag for it
    assert error_text(DataError("a `dest` b", setting="val_fraction"), flags) == "error: a `dest` b"
    assert error_text(DataError("a `dest` b", setting="dest"), {}) == "error: a `dest` b"


@pytest.mark.parametrize("backend", slow_for(BACKENDS, "keras"))  # keras: 22 s
def test_build_out_that_cannot_be_written(backend, cli, tmp_path):
    spec = tiny_spec(tmp_path)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    name = "model.keras" if backend == "keras" else "model.pt"
    cases = {
        folder: f"error: --out {folder}: expected a file to write, received an existing folder",
        a_file / name: f"error: --out {a_file / name}: expected a writable destination, received a path under "
        f"the file {a_file}",
        Path("/proc") / name: f"error: --out /proc/{name}: expected a writable destination, received one where "
        "the file cannot be written (No such file or directory)",
    }
    for out, expected in cases.items():
        assert one_line(cli("build", spec, "--backend", backend, "--out", out, env=ONE_THREAD)) == expected
    assert files_under(folder) == {"keep.txt": b"mine"} and a_file.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "notes.txt", spec.name]


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["verify", "{spec}", "--images", "0"],
            "error: --images: expected 1 to 16 images (every layer's output of "
            "every image is kept for each backend), received 0",
        ),
        (["verify", "{spec}", "--images", "-3"], "error: --images: expected 1 to 16 images"),
        (["verify", "{spec}", "--images", "100000"], "error: --images: expected 1 to 16 images"),
        (["verify", "{spec}", "--image", *["{image}"] * 17], "error: --image: expected 1 to 16 images"),
        (
            ["verify", "{spec}", "--seed", "-1"],
            "error: --seed: expected an integer from 0 to 4294967295 (2**32 - 1), received -1",
        ),
        (
            ["verify", "{spec}", "--seed", "4294967296"],
            "error: --seed: expected an integer from 0 to 4294967295 (2**32 - 1), received 4294967296",
        ),
        (
            ["finetune", "{spec}", "--data", "{data}", "--seed", "-1"],
            "error: --seed: expected an integer from 0 to 4294967295 (2**32 - 1), received -1",
        ),
        (["finetune", "{spec}", "--data", "{data}", "--seed", "4294967296"], "error: --seed: expected an integer"),
        (
            ["finetune", "{spec}", "--data", "{data}", "--workers", "65"],
            "error: --workers: expected 0 to 64, received 65",
        ),
        (
            ["finetune", "{spec}", "--data", "{data}", "--batch-size", "0"],
            "error: --batch-size: expected a positive integer, received 0",
        ),
        (["evaluate", "{run}", "--batch-size", "-2"], "error: --batch-size: expected a positive integer, received -2"),
    ],
    ids=[
        "images 0",
        "images -3",
        "images 100000",
        "17 image files",
        "verify seed -1",
        "verify seed 2**32",
        "finetune seed -1",
        "finetune seed 2**32",
        "workers 65",
        "batch size 0",
        "evaluate batch size",
    ],
)
def test_numbers_out_of_range(args, expected, cli, tmp_path, tiny_image_set):
    image = tiny_image_set / "val" / "circles" / "circles.0000.jpg"
    values = {"spec": tiny_spec(tmp_path), "data": tiny_image_set, "image": image, "run": tmp_path / "run"}
    result = cli(*[arg.format(**values) for arg in args], cwd=tmp_path)
    assert one_line(result).startswith(expected)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "run").exists()


def test_verify_takes_the_largest_seed_and_the_most_images(cli, tmp_path):
    result = cli("verify", tiny_spec(tmp_path), "--seed", "4294967295", "--images", "16", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["images"] == 16 and report["weights"] == "random weights (seed 4294967295)"


def test_every_command_that_writes_refuses_a_destination_under_a_file_before_any_work(cli, tmp_path, tiny_image_set):
    """The class of unwritable destinations, through every command that writes: a path under a file (as under
    /proc or a read-only folder) is one line naming the option and the file, exit 2, and nothing is made."""
    spec = tiny_spec(tmp_path)
    weights = tmp_path / "w.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec)), seed=1), vggspec.plan(str(spec)))
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    under = blocker / "sub"
    cases = {
        "build": (["build", spec, "--backend", "torch", "--out", under / "m.pt"], "--out"),
        "codegen": (["codegen", spec, "--framework", "torch", "--out", under / "m.py"], "--out"),
        "features": (["features", spec, image, "--layers", "block1_conv1", "--out", under / "f.npz"], "--out"),
        "convert": (["convert", weights, under / "w.pt", "--spec", spec], "destination"),
        "data": (["data", "cats-vs-dogs", "--source", tmp_path / "none.zip", "--dest", under / "split"], "--dest"),
        "finetune": (["finetune", spec, "--data", tiny_image_set, "--out", under / "run"], "--out"),
        "cache": (
            ["finetune", spec, "--data", tiny_image_set, "--out", tmp_path / "run", "--freeze", "block1_pool"]
            + ["--augment", "none", "--cache-features", "--cache-dir", under / "cache"],
            "--cache-dir",
        ),
    }
    before = sorted(tmp_path.rglob("*"))
    for name, (args, option) in cases.items():
        line = one_line(cli(*args, env=ONE_THREAD))
        assert line.startswith(f"error: {option} {under}") or line.startswith(f"error: {under}"), (name, line)
        assert f"a path under the file {blocker}" in line, (name, line)
        assert sorted(tmp_path.rglob("*")) == before, name
