"""Bad input found by new users: each case exits 2 with one line ``error: ...`` that says where and what,
writes nothing and leaves the user's files alone. Real images (Pillow), the real command line, real
Keras and torch, on a 32×32 spec with few filters.

torch runs get OMP_NUM_THREADS=1 (see tests/test_finetune.py for why).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec.data.cats_vs_dogs import prepare_cats_vs_dogs
from vggspec.errors import DataError
from vggspec.parity.inputs import random_bundle
from vggspec.training.folders import read_split
from vggspec.training.run_folder import NAME_LENGTH, default_run_dir
from vggspec.weights.formats import write_bundle

from conftest import run_in_own_session, run_vggspec, started_in_own_session
from image_sets import CLASSES, make_image_set

BACKENDS = ("keras", "torch")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TINY_YAML = (
    "name: {name}\nlayers: [conv3-4, maxpool, conv3-8, maxpool]\ninput_shape: [32, 32, {channels}]\n"
    "fc: [16]\nclasses: 2\npreprocessing: {preprocessing}\n"
)


def tiny_spec(folder: Path, channels: int = 3, name: str = "tiny", preprocessing: str = "caffe") -> Path:
    path = folder / f"{name[:40]}-{channels}.yaml"
    path.write_text(TINY_YAML.format(name=name, channels=channels, preprocessing=preprocessing))
    return path


def one_line(result) -> str:
    """The single ``error:`` line of a refused command (exit 2, no traceback, nothing else on stderr)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def image_set(module_tmp) -> Path:
    """8 training and 2 validation RGB JPEGs per class, 32×32."""
    return make_image_set(module_tmp.mktemp("rgb"), size=32, train_per_class=8, val_per_class=2, seed=4)


def truncated_jpeg(size: int = 32) -> bytes:
    """A JPEG whose header parses but whose pixels stop half-way (Pillow: "image file is truncated")."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(9).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    return data[: len(data) // 2]


# ---- 7: outputs that cannot be written ----


@pytest.mark.parametrize("backend", BACKENDS)
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_finetune_out_that_cannot_be_written(backend, cli, tmp_path, image_set):
    spec = tiny_spec(tmp_path)
    a_file = tmp_path / "photo.jpg"
    a_file.write_bytes(b"mine")
    cases = {
        Path("/proc/run"): "error: /proc/run: expected a run folder that can be created and written, received "
        "one that cannot (No such file or directory)",
        a_file / "run": f"error: {a_file / 'run'}: expected a run folder that can be created, received a path "
        f"under the file {a_file}",
        # 14: an existing file as --out is a file, not a folder "with files"
        a_file: f"error: --out {a_file}: expected a new or empty folder, received a file",
    }
    for out, expected in cases.items():
        result = cli(
            "finetune",
            spec,
            "--data",
            image_set,
            "--backend",
            backend,
            "--epochs",
            "1",
            "--workers",
            "0",
            "--out",
            out,
            env=ONE_THREAD,
            cwd=tmp_path,
        )
        assert one_line(result) == expected
    assert a_file.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", spec.name]


# ---- 8: numbers out of range ----


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
def test_numbers_out_of_range(args, expected, cli, tmp_path, image_set):
    image = image_set / "val" / "circles" / "circles.0000.jpg"
    values = {"spec": tiny_spec(tmp_path), "data": image_set, "image": image, "run": tmp_path / "run"}
    result = cli(*[arg.format(**values) for arg in args], cwd=tmp_path)
    assert one_line(result).startswith(expected)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "run").exists()


def test_verify_takes_the_largest_seed_and_the_most_images(cli, tmp_path):
    result = cli("verify", tiny_spec(tmp_path), "--seed", "4294967295", "--images", "16", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["images"] == 16 and report["weights"] == "random weights (seed 4294967295)"


# ---- 9: specs of 1 (and 4) channels read images with that many channels ----


def gray_image_set(root: Path, train_per_class: int, val_per_class: int) -> Path:
    """The shapes of tests/image_sets.py saved as real grayscale ("L") files, PNG and JPEG in turn."""
    make_image_set(root, size=32, train_per_class=train_per_class, val_per_class=val_per_class, seed=2)
    for index, path in enumerate(sorted(root.rglob("*.jpg"))):
        with Image.open(path) as image:
            gray = image.convert("L")
        path.unlink()
        gray.save(path.with_suffix(".png" if index % 2 else ".jpg"))
    return root


@pytest.fixture(scope="module")
def gray_set(module_tmp) -> Path:
    return gray_image_set(module_tmp.mktemp("gray"), train_per_class=8, val_per_class=2)


def test_gray_files_are_gray(gray_set):
    files = sorted(gray_set.rglob("*.*"))
    assert {p.suffix for p in files} == {".png", ".jpg"} and len(files) == 20
    for path in files:
        with Image.open(path) as image:
            assert image.mode == "L"


def test_predict_and_verify_on_a_one_channel_spec(cli, tmp_path, gray_set):
    spec = tiny_spec(tmp_path, channels=1)
    plan = vggspec.plan(str(spec))
    assert plan.input_shape == (32, 32, 1)
    weights = tmp_path / "gray.safetensors"
    write_bundle(weights, random_bundle(plan, seed=2))
    images = [gray_set / "val" / "circles" / "circles.0000.jpg", gray_set / "val" / "stripes" / "stripes.0001.png"]
    colour = tmp_path / "colour.jpg"  # a colour file is read as its luma
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(colour)
    scores = {}
    for backend in BACKENDS:
        result = cli(
            "predict", spec, *images, colour, "--weights", weights, "--backend", backend, "--json", env=ONE_THREAD
        )
        assert result.returncode == 0, result.stderr
        scores[backend] = json.loads(result.stdout)
    for path in map(str, [*images, colour]):
        keras_rows, torch_rows = scores["keras"][path], scores["torch"][path]
        assert [row["index"] for row in keras_rows] == [row["index"] for row in torch_rows]
        assert abs(keras_rows[0]["score"] - torch_rows[0]["score"]) < 1e-5
        assert sum(row["score"] for row in keras_rows) == pytest.approx(1.0, abs=1e-5)
    result = cli("verify", spec, "--weights", weights, "--image", *images, colour, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["images"] == 3 and report["input_shape"] == [32, 32, 1]


def test_predict_on_a_four_channel_spec_reads_rgba(cli, tmp_path):
    spec = tiny_spec(tmp_path, channels=4, preprocessing="torch")
    weights = tmp_path / "rgba.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec)), seed=4))
    image = tmp_path / "alpha.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32, 4), dtype=np.uint8), "RGBA").save(image)
    scores = []
    for backend in BACKENDS:
        result = cli("predict", spec, image, "--weights", weights, "--backend", backend, "--json", env=ONE_THREAD)
        assert result.returncode == 0, result.stderr
        scores.append([row["score"] for row in json.loads(result.stdout)[str(image)]])
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-5)


def test_a_channel_count_images_cannot_provide_is_one_line(cli, tmp_path, gray_set):
    spec = tiny_spec(tmp_path, channels=2)
    weights = tmp_path / "two.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec))))
    image = gray_set / "val" / "circles" / "circles.0000.jpg"
    expected = (
        f"error: {spec}: input_shape [32, 32, 2]: expected 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, "
        "the counts image files can provide, received 2"
    )
    assert one_line(cli("predict", spec, image, "--weights", weights)) == expected
    assert one_line(cli("verify", spec, "--image", image)) == expected
    result = cli("finetune", spec, "--data", gray_set, "--backend", "torch", "--out", tmp_path / "run")
    assert one_line(result) == expected
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_finetune_and_evaluate_a_one_channel_spec(backend, cli, tmp_path, gray_set):
    spec = tiny_spec(tmp_path, channels=1, preprocessing="torch")
    run = tmp_path / "run"
    result = cli(
        "finetune",
        spec,
        "--data",
        gray_set,
        "--backend",
        backend,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--out",
        run,
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["spec"]["input_shape"] == [32, 32, 1] and record["epochs_done"] == 1
    assert record["train_images"] == 16 and record["val_images"] == 4
    evaluated = cli("evaluate", run, "--json", env=ONE_THREAD)
    assert evaluated.returncode == 0, evaluated.stderr
    scored = json.loads(evaluated.stdout)
    assert scored["images"] == 4 and scored["accuracy"] == pytest.approx(record["best"]["val_accuracy"])


# ---- 11: the default run folder of a long spec name ----


def test_default_run_folder_of_a_long_name_is_short_and_unique(tmp_path):
    long_a, long_b = "a" * 299 + "x", "a" * 299 + "y"
    folder_a, folder_b = default_run_dir(long_a, "torch"), default_run_dir(long_b, "torch")
    assert folder_a.parent == Path("runs") and folder_a != folder_b
    for folder in (folder_a, folder_b):
        assert len(folder.name.encode()) <= NAME_LENGTH + len("-torch-20250101-000000")
        assert folder.name.startswith("a" * (NAME_LENGTH - 9))
        (tmp_path / folder).mkdir(parents=True)  # "File name too long" before
    assert default_run_dir("vgg16", "keras").name.startswith("vgg16-keras-")  # short names stay as they were


def test_finetune_default_folder_of_a_128_character_name(cli, tmp_path, image_set):
    name = "a" + "b" * 127
    result = cli(
        "finetune",
        tiny_spec(tmp_path, name=name),
        "--data",
        image_set,
        "--backend",
        "torch",
        "--epochs",
        "1",
        "--workers",
        "0",
        env=ONE_THREAD,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith(name[: NAME_LENGTH - 9] + "-") and "-torch-" in folder.name
    assert len(folder.name) == NAME_LENGTH + len("-torch-20250101-000000")
    assert json.loads((folder / "run.json").read_text())["spec"]["name"] == name


# ---- 12: one class folder ----


def test_one_class_folder_is_refused(cli, tmp_path, image_set):
    data = tmp_path / "one_class"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
        os.symlink(image_set / split / "circles", data / split / "circles")
    result = cli("finetune", tiny_spec(tmp_path), "--data", data, "--backend", "torch", cwd=tmp_path)
    assert one_line(result) == (
        f"error: {data / 'train'}: expected at least 2 class folders (a classifier tells "
        "classes apart), received 1: circles"
    )
    assert not (tmp_path / "runs").exists()


# ---- 14: run folders that are not ----


@pytest.fixture(scope="module")
def finished_run(module_tmp, image_set) -> Path:
    run = module_tmp.mktemp("finished") / "run"
    spec = tiny_spec(run.parent)
    result = run_vggspec(
        "finetune",
        spec,
        "--data",
        image_set,
        "--backend",
        "torch",
        "--epochs",
        1,
        "--workers",
        0,
        "--out",
        run,
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    return run


def test_evaluate_a_file_says_it_is_a_file(cli, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"mine")
    assert one_line(cli("evaluate", photo)) == (
        f"error: {photo}: expected a run folder with run.json (written by vggspec finetune), received a file"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda record: {**record, "spec": 3}, 'expected "spec" to be a mapping, received an integer (3)'),
        (lambda record: [1, 2], "expected a JSON object, received a list ([1, 2])"),
        (
            lambda record: {k: v for k, v in record.items() if k != "checkpoints"},
            'expected the key "checkpoints", received a record without it',
        ),
        (
            lambda record: {**record, "config": {**record["config"], "seed": "0"}},
            'expected "config.seed" to be an integer, received a string ("0")',
        ),
        (
            lambda record: {**record, "config": {**record["config"], "cache_features": 0}},
            'expected "config.cache_features" to be true or false, received an integer (0)',
        ),
        (
            lambda record: {**record, "classes": "circles,stripes"},
            'expected "classes" to be a list of class names, received a string ("circles,stripes")',
        ),
    ],
    ids=["spec 3", "a list", "missing key", "seed a string", "cache_features 0", "classes a string"],
)
def test_run_json_that_is_not_a_run_record(change, message, cli, tmp_path, finished_run, image_set):
    run = tmp_path / "run"
    run.mkdir()
    for path in finished_run.iterdir():
        (run / path.name).write_bytes(path.read_bytes())
    record = change(json.loads((finished_run / "run.json").read_text()))
    (run / "run.json").write_text(json.dumps(record))
    before = files_under(run)
    expected = f"error: {run / 'run.json'}: not a vggspec run record (written by vggspec finetune): {message}"
    assert one_line(cli("evaluate", run, "--data", image_set)) == expected
    resumed = cli(
        "finetune", tiny_spec(tmp_path), "--data", image_set, "--out", run, "--resume", "--epochs", "2", env=ONE_THREAD
    )
    assert one_line(resumed) == expected
    assert files_under(run) == before


# ---- 16: data sets too small to split; unreadable images; symlink loops ----


def small_jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def kaggle_zip(path: Path, cats: int, dogs: int, broken_dogs: int = 0) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for label, count in (("cat", cats), ("dog", dogs)):
            for n in range(count):
                archive.writestr(f"train/{label}.{n}.jpg", small_jpeg(n + 100 * (label == "dog")))
        for n in range(dogs, dogs + broken_dogs):
            archive.writestr(f"train/dog.{n}.jpg", b"not a jpeg")
    return path


@pytest.mark.parametrize(
    "cats, dogs, broken, fraction, message",
    [
        (1, 1, 0, "0.2", "cat: train 1, val 0 (of 1 image, --val-fraction 0.2)"),
        (22, 19, 0, "0.99", "cat: train 0, val 22 (of 22 images, --val-fraction 0.99)"),
        (6, 1, 5, "0.2", "dog: train 1, val 0 (of 1 image kept, 5 dropped, --val-fraction 0.2)"),
    ],
    ids=["one image per class", "val fraction 0.99", "dropped files empty a split"],
)
def test_data_refuses_a_split_with_an_empty_class(cats, dogs, broken, fraction, message, cli, tmp_path):
    source = kaggle_zip(tmp_path / "train.zip", cats, dogs, broken)
    dest = tmp_path / "split"
    result = cli("data", "cats-vs-dogs", "--dest", dest, "--source", source, "--val-fraction", fraction)
    assert one_line(result) == (
        f"error: {source}: expected a split with images of each class in train and in val, "
        f"received {message}; use more images or a --val-fraction nearer 0.5"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.zip"]  # no DIR, no .split.partial


def test_data_with_enough_images_still_splits(tmp_path):
    source = kaggle_zip(tmp_path / "train.zip", 2, 2)
    prepared = prepare_cats_vs_dogs(tmp_path / "split", str(source), val_fraction=0.5, progress=False)
    assert prepared.manifest["counts"] == {"train": {"cat": 1, "dog": 1}, "val": {"cat": 1, "dog": 1}}


@pytest.mark.parametrize(
    "where, bytes_",
    [("val/stripes/stripes.0001.jpg", truncated_jpeg()), ("train/circles/circles.0003.jpg", b"not an image at all")],
    ids=["truncated in val", "not an image in train"],
)
def test_unreadable_image_is_named_before_anything_is_written(where, bytes_, cli, tmp_path, image_set):
    data = tmp_path / "data"
    for path in image_set.rglob("*.jpg"):
        target = data / path.relative_to(image_set)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (data / where).write_bytes(bytes_)
    result = cli("finetune", tiny_spec(tmp_path), "--data", data, "--backend", "torch", "--out", tmp_path / "run")
    line = one_line(result)
    assert line.startswith(
        f"error: {data / where}: expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file ("
    )
    assert ("truncated" if "val" in where else "cannot identify image file") in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_broken_mid_run_stops_with_one_line_and_resumes(backend, tmp_path):
    """Files that break after the check (here: every training image, once epoch 1 is committed) stop the run
    in a DataLoader worker process (torch) or a PyDataset thread (keras) with one line naming a file;
    the finished epochs stay for --resume."""
    data = make_image_set(tmp_path / "data", size=32, train_per_class=16, val_per_class=2, seed=5)
    spec, run = tiny_spec(tmp_path), tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "vggspec",
        "finetune",
        str(spec),
        "--data",
        str(data),
        "--backend",
        backend,
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--workers",
        "2",
        "--out",
        str(run),
    ]
    with started_in_own_session(
        args, env={**os.environ, **ONE_THREAD}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        deadline = time.monotonic() + 300
        while not ((run / "metrics.csv").is_file() and len((run / "metrics.csv").read_text().splitlines()) >= 2):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        originals = {path: path.read_bytes() for path in sorted((data / "train").rglob("*.jpg"))}
        for path in originals:
            path.write_bytes(truncated_jpeg())
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1], stderr[-3000:]
    assert errors[0].startswith(f"error: {data / 'train'}/")
    assert (
        ": expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file "
        "(image file is truncated"
    ) in errors[0]
    finished = (run / "metrics.csv").read_text().splitlines()[1:]
    assert 1 <= len(finished) < 3
    for path, content in originals.items():
        path.write_bytes(content)
    resumed = run_in_own_session([*args, "--resume"], 300, env={**os.environ, **ONE_THREAD})
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} after epoch {len(finished)} of 3" in resumed.stdout
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["1", "2", "3"] and rows[: len(finished)] == finished


def test_symlink_loops_are_read_once(tmp_path, cli):
    """Links to files and folders are followed, but no real folder is read twice and no real image is
    counted twice in a split: loops, links to the split or to another class add nothing."""
    data = make_image_set(tmp_path / "data", size=32, train_per_class=6, val_per_class=2, seed=6)
    extra = make_image_set(tmp_path / "extra", size=32, train_per_class=3, val_per_class=0, seed=7)
    circles, stripes = data / "train" / "circles", data / "train" / "stripes"
    os.symlink(".", circles / "again")  # a loop: circles/again/again/...
    os.symlink("..", circles / "up")  # the split itself: both classes
    os.symlink("../stripes", circles / "sibling")  # another class
    os.symlink("circles.0000.jpg", circles / "twice.jpg")  # an image counted already
    os.symlink("../../../data", stripes / "root")  # the data folder: train and val
    os.symlink(extra / "train" / "stripes", stripes / "more")  # a real folder outside: followed once
    os.symlink(extra / "train" / "stripes", stripes / "more_again")  # ... and not twice
    with pytest.warns(UserWarning, match="not followed, it leads to") as caught:
        images = read_split(data, "train")
    assert images.class_counts() == [6, 9]
    assert len({os.path.realpath(path) for path in images.paths}) == 15
    assert all(str(path).startswith(str(circles)) for path, label in zip(images.paths, images.labels) if label == 0)
    assert sorted(str(w.message).split(":")[0] for w in caught) == sorted(
        str(p)
        for p in (circles / "again", circles / "sibling", circles / "up", stripes / "more_again", stripes / "root")
    )
    # a class folder that is itself a link: a link above where it really is makes a loop too
    # (elsewhere/circles/up leads to elsewhere, whose other/ is no class of this split)
    elsewhere = tmp_path / "elsewhere"
    for name, count in (("circles", 3), ("other", 4)):
        (elsewhere / name).mkdir(parents=True)
        for path in sorted((data / "val").rglob("*.jpg"))[:count]:
            (elsewhere / name / path.name).write_bytes(path.read_bytes())
    os.symlink("..", elsewhere / "circles" / "up")
    linked = tmp_path / "linked" / "train"
    (linked / "stripes").mkdir(parents=True)
    os.symlink(elsewhere / "circles", linked / "circles")
    for path in sorted(extra.rglob("*.jpg"))[:2]:
        (linked / "stripes" / path.name).write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="not followed, it leads to") as caught:
        again = read_split(linked.parent, "train")
    assert again.class_counts() == [3, 2]
    assert [str(w.message).split(":")[0] for w in caught] == [str(linked / "circles" / "up")]
    result = cli(
        "finetune",
        tiny_spec(tmp_path),
        "--data",
        data,
        "--backend",
        "torch",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--out",
        tmp_path / "run",
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train_images"] == 15
    assert result.stderr.count(": not followed, it leads to ") == 5


def test_read_split_without_links_is_unchanged(image_set):
    images = read_split(image_set, "train")
    assert images.class_names == CLASSES and images.class_counts() == [8, 8]
    with pytest.raises(DataError, match="expected class folders"):
        read_split(image_set / "train", "circles")
