"""`vggspec finetune` and `vggspec evaluate` in both backends, on image sets the tests draw with Pillow.

The data pipeline, the metrics and bad input are checked in seconds; training is real
(Keras ``model.fit``, a torch loop) on the small spec specs/examples/small64.yaml, and one
fine-tuning step of the full VGG16 runs on random weights written as a Keras .h5 file.
torch runs get OMP_NUM_THREADS=1: on two shared cores its two OpenMP threads wait on each
other whenever another process takes a core (10x slower steps measured).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vggspec.training.batches import ImageBatches
from vggspec.training.folders import read_split
from vggspec.training.metrics import (
    RunningMeans,
    confusion_matrix,
    cross_entropy,
    format_confusion,
    loss_and_correct,
)
from vggspec.training.protocol import OPTIMIZER_OPTIONS, OPTIMIZERS, TrainConfig
from vggspec.training.seeds import dropout_seed

from cli_cases import BACKENDS, ONE_THREAD, one_line, tiny_spec
from conftest import SPECS, run_vggspec, started_in_own_session
from image_sets import CLASSES, make_image_set

SMALL = SPECS / "examples" / "small64.yaml"


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def without_seconds(row: dict[str, str]) -> dict[str, str]:
    return {column: value for column, value in row.items() if column != "seconds"}


def finetune(*args: object, backend: str, timeout: float = 600):
    return run_vggspec("finetune", *map(str, args), "--backend", backend, env=ONE_THREAD, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_set(module_tmp) -> Path:
    """24 training and 8 validation images per class, 64x64."""
    return make_image_set(module_tmp.mktemp("tiny"), size=64, train_per_class=24, val_per_class=8, seed=1)


@pytest.fixture(scope="module")
def image_set(module_tmp) -> Path:
    """200 training and 60 validation images per class, 64x64."""
    return make_image_set(module_tmp.mktemp("shapes"), size=64, train_per_class=200, val_per_class=60)


# ---- the pipeline and the metrics (no framework) ----


def test_class_folders_are_sorted_and_labelled(tiny_set):
    images = read_split(tiny_set, "train")
    assert images.class_names == CLASSES == ("circles", "stripes")
    assert images.class_counts() == [24, 24]
    assert all(path.parent.name == CLASSES[label] for path, label in zip(images.paths, images.labels))


def test_batches_are_deterministic_augmented_and_preprocessed(tiny_set):
    images = read_split(tiny_set, "train")
    first = ImageBatches(images, (64, 64), "tf", 10, train=True, seed=3)
    again = ImageBatches(images, (64, 64), "tf", 10, train=True, seed=3)
    assert len(first) == 5  # 48 images, batches of 10
    x, y = first.batch(0)
    assert x.shape == (10, 64, 64, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= -1.0 and x.max() <= 1.0  # "tf" preprocessing: -1..1
    np.testing.assert_array_equal(x, again.batch(0)[0])
    first.set_epoch(2)
    assert not np.array_equal(first.order, again.order)  # reshuffled
    again.set_epoch(2)
    np.testing.assert_array_equal(first.batch(4)[0], again.batch(4)[0])
    assert np.sort(first.order).tolist() == list(range(48))  # every image once per epoch
    # augmentation (pad-crop, flip) moves pixels; validation batches are the plain resized images
    plain = np.concatenate(
        [x for x, _ in (ImageBatches(images, (64, 64), "tf", 16, train=False).batch(i) for i in range(3))]
    )
    augmented, labels = first.batch(0)
    np.testing.assert_array_equal(labels, images.labels[first.order[:10]])
    moved = [not np.array_equal(image, plain[index]) for image, index in zip(augmented, first.order[:10])]
    assert sum(moved) >= 8
    assert np.abs(augmented.mean() - plain.mean()) < 0.1  # the same pictures, shifted or flipped


@pytest.mark.parametrize("augment", ["none", "flip", "crop", "flip,crop"])
def test_the_augment_setting_chooses_what_training_batches_do(augment, tiny_set):
    """none: the plain images; flip: each plain or mirrored left-right, both seen; crop: shifted, never
    mirrored; flip,crop (the default): both. Only the order is shuffled for none."""
    images = read_split(tiny_set, "train")
    plain = ImageBatches(images, (64, 64), "tf", 48, train=False).batch(0)[0]
    batches = ImageBatches(images, (64, 64), "tf", 48, train=True, seed=3, augment=augment)
    pictures, labels = batches.batch(0)
    np.testing.assert_array_equal(labels, images.labels[batches.order])
    originals = plain[batches.order]
    same = sum(np.array_equal(x, original) for x, original in zip(pictures, originals))
    mirrored = sum(np.array_equal(x, original[:, ::-1]) for x, original in zip(pictures, originals))
    if augment == "none":
        assert same == 48
    elif augment == "flip":
        assert same + mirrored == 48 and min(same, mirrored) >= 12
    else:
        assert same + mirrored <= 6  # shifted (a crop at the centre offset is the plain image: 1 in 81)
    if augment == "crop":
        shifted_back = [np.abs(x - original).mean() for x, original in zip(pictures, originals)]
        assert np.mean(shifted_back) < np.mean([np.abs(x[:, ::-1] - o).mean() for x, o in zip(pictures, originals)])
    with pytest.raises(ValueError, match="augment: expected one of none, flip, crop, flip,crop"):
        ImageBatches(images, (64, 64), "tf", 4, train=True, augment="rotate")


def test_batches_shard_across_ranks(tiny_set):
    images = read_split(tiny_set, "train")  # 48 images
    val = read_split(tiny_set, "val")  # 16 images
    shards = [ImageBatches(images, (64, 64), "tf", 4, train=True, rank=r, world_size=5) for r in range(5)]
    assert {len(s) for s in shards} == {3}  # 48 padded to 50: 10 per rank, 3 batches each
    assert sorted(set(np.concatenate([s.order for s in shards]).tolist())) == list(range(48))
    parts = [ImageBatches(val, (64, 64), "tf", 4, train=False, rank=r, world_size=3) for r in range(3)]
    assert sorted(np.concatenate([p.order for p in parts]).tolist()) == list(range(16))  # no padding
    assert [len(p.labels) for p in parts] == [6, 5, 5]


def test_loss_accuracy_and_confusion_matrix():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], dtype=np.float32)
    labels = np.array([0, 1, 1, 1])
    np.testing.assert_allclose(
        cross_entropy(probabilities, labels, "softmax"), -np.log([0.9, 0.8, 0.4, 0.7]), rtol=1e-6
    )
    logits = np.log(probabilities)
    np.testing.assert_allclose(cross_entropy(logits, labels, None), -np.log([0.9, 0.8, 0.4, 0.7]), rtol=1e-6)
    total, correct = loss_and_correct(probabilities, labels, "softmax")
    assert correct == 3 and total == pytest.approx(-np.log([0.9, 0.8, 0.4, 0.7]).sum())
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), 2)
    assert matrix.tolist() == [[1, 0], [1, 2]]
    assert format_confusion(matrix, ["circles", "stripes"]).splitlines()[2].split() == ["stripes", "1", "2"]


def test_running_means_weight_each_batch_by_its_images():
    """What every backend's trainer returns and shows: the loss weighted by batch size, accuracy over all images."""
    means = RunningMeans()
    assert means.result() == {"loss": 0.0, "accuracy": 0.0, "count": 0}
    means.add(0.5, 3, 4)
    assert (means.loss, means.accuracy) == (0.5, 0.75)
    means.add(2.0, 0, 1)  # a short last batch counts for its one image
    assert means.result() == {"loss": 0.8, "accuracy": 0.6, "count": 5}


def test_dropout_seeds_are_the_same_in_every_process():
    """A resumed run is another process: its dropout seeds must not depend on Python's hash randomisation."""
    code = (
        "from vggspec.training.seeds import dropout_seed; "
        "print(dropout_seed(7, 3, 1, bits=63), dropout_seed(7, 3, 2, bits=31))"
    )
    printed = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(printed) == 1
    first, second = map(int, printed.pop().split())
    assert (first, second) == (dropout_seed(7, 3, 1, bits=63), dropout_seed(7, 3, 2, bits=31))
    assert 0 <= first < 2**63 and 0 <= second < 2**31 and first != dropout_seed(7, 4, 1, bits=63)


def test_the_optimizer_takes_only_its_own_options():
    assert TrainConfig(optimizer="sgd", momentum=0.5).optimizer_options() == {"momentum": 0.5}
    assert TrainConfig(optimizer="adam", momentum=0.5).optimizer_options() == {}
    assert OPTIMIZERS == tuple(OPTIMIZER_OPTIONS) == ("adam", "sgd")


def test_first_ctrl_c_stops_at_the_next_check_and_second_at_once():
    from vggspec.training.interrupt import StopOnInterrupt

    before = signal.getsignal(signal.SIGINT)
    with StopOnInterrupt() as stop:
        stop.check()  # nothing requested yet
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.requested  # remembered, not raised where it landed
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        assert signal.getsignal(signal.SIGINT) is before  # a second Ctrl-C raises at once
    assert signal.getsignal(signal.SIGINT) is before


# ---- bad input: exit 2, one line, no traceback, nothing written ----


@pytest.mark.parametrize(
    "case",
    ["missing data", "no class folders", "wrong freeze", "classes", "used out", "resume nothing", "evaluate nothing"],
)
def test_bad_input_is_one_line_and_exit_2(case, tiny_set, tmp_path):
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "val").mkdir()
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("keep me")
    args, expected = {
        "missing data": (["finetune", SMALL, "--data", tmp_path / "nowhere"], "does not exist"),
        "no class folders": (["finetune", SMALL, "--data", empty], "expected class folders"),
        "wrong freeze": (
            ["finetune", SMALL, "--data", tiny_set, "--freeze", "block9_pool"],
            "--freeze: expected none or a layer name (input_layer ... predictions), received 'block9_pool'",
        ),
        "classes": (["finetune", SMALL, "--data", tiny_set, "--classes", "3"], "--classes: expected the number"),
        "used out": (["finetune", SMALL, "--data", tiny_set, "--out", used], "expected a new or empty folder"),
        "resume nothing": (
            ["finetune", SMALL, "--data", tiny_set, "--out", tmp_path / "run", "--resume"],
            "--resume: expected a run folder with run.json",
        ),
        "evaluate nothing": (["evaluate", tmp_path / "run", "--data", tiny_set], "expected a run folder"),
    }[case]
    result = run_vggspec(*args, "--backend", "torch", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "run").exists()
    assert [p.name for p in used.iterdir()] == ["notes.txt"]


def test_weights_of_another_network_are_refused_with_the_layer(tiny_set, tmp_path):
    """Only head layers may be skipped: a convolution that does not fit means the wrong file."""
    import vggspec
    from vggspec.weights.bundle import WeightBundle
    from vggspec.weights.formats import write_bundle

    wider = vggspec.spec_from_mapping(
        {
            **vggspec.spec_to_mapping(vggspec.load_spec(SMALL)),
            "layers": ["conv3-24", "maxpool", "conv3-32", "maxpool", "conv3-64", "conv3-64", "maxpool"],
        }
    )
    plan = vggspec.plan(wider)
    weights = tmp_path / "wider.safetensors"
    write_bundle(
        weights,
        WeightBundle(
            {
                layer.name: {name: np.zeros(shape, np.float32) for name, shape in layer.weights}
                for layer in plan.weighted_layers()
            }
        ),
        plan,
    )
    result = run_vggspec(
        "finetune",
        SMALL,
        "--data",
        tiny_set,
        "--weights",
        weights,
        "--backend",
        "torch",
        "--out",
        tmp_path / "run",
        env=ONE_THREAD,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        (
            f"error: {weights}: layer block1_conv1: expected kernel of shape (3, 3, 3, 16), received (3, 3, 3, 24) "
            "(only head layers may differ when fine-tuning)"
        )
    ]
    assert not (tmp_path / "run").exists()


# ---- a run end to end in seconds: files, evaluate ----


def test_one_epoch_run_folder_and_evaluate(tiny_set, tmp_path):
    run = tmp_path / "run"
    result = finetune(
        SMALL, "--data", tiny_set, "--epochs", 1, "--batch-size", 8, "--workers", 0, "--out", run, backend="torch"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in run.iterdir()) == [
        ".lock",
        "best.pt",
        "curves.png",
        "last.pt",
        "metrics.csv",
        "run.json",
    ]
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "epoch 1/1" in result.stderr and "accuracy=" in result.stderr  # progress bar with running means
    record = json.loads((run / "run.json").read_text())
    assert record["classes"] == list(CLASSES) and record["spec"]["classes"] == 2
    assert record["freeze"] == "none" and record["config"]["freeze"] == []  # from scratch: nothing frozen
    assert record["backend"] == "torch" and record["epochs_done"] == 1 and record["best"]["epoch"] == 1
    assert [list(row) for row in metrics(run)] == [
        ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"]
    ]
    row = metrics(run)[0]
    assert row["epoch"] == "1" and 0 <= float(row["val_accuracy"]) <= 1 and float(row["seconds"]) > 0
    # the best checkpoint is a weight file like any other
    import vggspec
    from vggspec.weights.formats import read_bundle

    bundle = read_bundle(run / "best.pt", vggspec.plan(vggspec.spec_from_mapping(record["spec"])))
    assert bundle.layers["predictions"]["kernel"].shape == (64, 2)
    check_evaluate(run, tiny_set, float(row["val_accuracy"]), 16)


def check_evaluate(run: Path, data: Path, val_accuracy: float, count: int) -> None:
    """`vggspec evaluate` prints the best epoch's val_accuracy and a 2x2 matrix over ``count`` images."""
    result = run_vggspec("evaluate", run, "--data", data, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    found = re.search(r"^accuracy ([0-9.]+) \((\d+)/(\d+)\)", result.stdout, re.MULTILINE)
    assert found, result.stdout
    correct, total = int(found.group(2)), int(found.group(3))
    assert total == count and correct / total == pytest.approx(val_accuracy, abs=1e-12)
    assert float(found.group(1)) == pytest.approx(val_accuracy, abs=5e-7)
    lines = result.stdout.splitlines()
    header = lines.index("confusion matrix (rows: true class, columns: predicted class)")
    assert lines[header + 1].split() == list(CLASSES)
    matrix = np.array([[int(n) for n in line.split()[1:]] for line in lines[header + 2 : header + 4]])
    assert [line.split()[0] for line in lines[header + 2 : header + 4]] == list(CLASSES)
    assert matrix.shape == (2, 2) and matrix.sum() == count and np.trace(matrix) == correct
    assert matrix.sum(axis=1).tolist() == [count // 2, count // 2]  # rows are the true classes


# ---- training from scratch reaches 95% ----


@pytest.fixture(scope="module")
def trained(image_set, module_tmp):
    """backend -> (run folder, wall seconds), trained once per backend for the tests below."""
    runs = {}

    def train(backend: str):
        if backend not in runs:
            run = module_tmp.mktemp(f"trained-{backend}") / "run"
            started = time.monotonic()
            result = finetune(
                SMALL, "--data", image_set, "--epochs", 10, "--batch-size", 16, "--out", run, backend=backend
            )
            assert result.returncode == 0, result.stderr
            runs[backend] = (run, time.monotonic() - started)
        return runs[backend]

    return train


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_small_spec_trains_from_scratch_to_95_percent(backend, trained):
    run, seconds = trained(backend)
    rows = metrics(run)
    assert [int(row["epoch"]) for row in rows] == list(range(1, 11))
    best = max(float(row["val_accuracy"]) for row in rows)
    print(f"{backend}: best val_accuracy {best:.4f}, {seconds:.1f} s for 10 epochs")
    assert best >= 0.95
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_reports_the_best_epoch(backend, trained, image_set):
    run, _ = trained(backend)
    record = json.loads((run / "run.json").read_text())
    best_row = metrics(run)[record["best"]["epoch"] - 1]
    assert float(best_row["val_accuracy"]) == max(float(row["val_accuracy"]) for row in metrics(run))
    check_evaluate(run, image_set, float(best_row["val_accuracy"]), 120)
    # the other framework reads the same checkpoint and classifies (nearly) every image alike
    other = "torch" if backend == "keras" else "keras"
    result = run_vggspec("evaluate", run, "--data", image_set, "--backend", other, "--json", env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    crossed = json.loads(result.stdout)
    assert crossed["images"] == 120
    assert abs(crossed["correct"] - round(float(best_row["val_accuracy"]) * 120)) <= 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_second_stage_starts_from_the_best_checkpoint_in_the_other_framework(backend, trained, image_set, tmp_path):
    """Stage two of the recipe (--freeze a later pool, SGD lr 1e-4) from stage one's best weights,
    in the other framework: the canonical layout carries every layer over, nothing is skipped."""
    import vggspec
    from vggspec.weights.formats import read_bundle

    first, _ = trained(backend)
    record = json.loads((first / "run.json").read_text())
    best = first / record["checkpoints"]["best"]
    other = "torch" if backend == "keras" else "keras"
    run = tmp_path / "stage2"
    result = finetune(
        SMALL,
        "--data",
        image_set,
        "--weights",
        best,
        "--freeze",
        "block2_pool",
        "--optimizer",
        "sgd",
        "--lr",
        "1e-4",
        "--epochs",
        1,
        "--batch-size",
        16,
        "--out",
        run,
        backend=other,
    )
    assert result.returncode == 0, result.stderr
    assert "skipped:" not in result.stderr
    plan = vggspec.plan(vggspec.spec_from_mapping(record["spec"]))
    before = read_bundle(best, plan)
    after = read_bundle(run / f"last{'.pt' if other == 'torch' else '.weights.h5'}", plan)
    for name in ("block1_conv1", "block2_conv1"):  # frozen
        np.testing.assert_array_equal(after.layers[name]["kernel"], before.layers[name]["kernel"])
    assert np.abs(after.layers["block3_conv2"]["kernel"] - before.layers["block3_conv2"]["kernel"]).max() > 0
    row = metrics(run)[0]
    assert float(row["val_accuracy"]) >= float(record["best"]["val_accuracy"]) - 0.05  # starts where stage one ended


# ---- an interrupted run resumes without losing or repeating an epoch ----


@pytest.mark.slow
@pytest.mark.parametrize("backend, stop", [("torch", signal.SIGKILL), ("keras", signal.SIGINT)])
def test_resume_after_interruption(backend, stop, tiny_set, tmp_path):
    run = tmp_path / "run"
    args = [
        "finetune",
        SMALL,
        "--data",
        tiny_set,
        "--epochs",
        3,
        "--batch-size",
        4,
        "--workers",
        0,
        "--out",
        run,
        "--backend",
        backend,
    ]
    with started_in_own_session(
        [sys.executable, "-m", "vggspec", *map(str, args)],
        env={**os.environ, **ONE_THREAD},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        deadline = time.monotonic() + 300
        while not ((run / "metrics.csv").is_file() and len(metrics(run)) >= 1):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=120)
    before = metrics(run)
    assert process.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130), (before, stderr[-3000:])
    assert 1 <= len(before) < 3, stderr[-3000:]  # stopped in the middle
    result = run_vggspec(*map(str, args), "--resume", env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} after epoch {len(before)} of 3" in result.stdout
    after = metrics(run)
    assert [int(row["epoch"]) for row in after] == [1, 2, 3]
    assert after[: len(before)] == before  # finished epochs are kept, not trained again
    record = json.loads((run / "run.json").read_text())
    assert record["epochs_done"] == 3
    # the same numbers as a run that was never stopped: weights, optimizer state, data order and dropout
    # masks all continue where they were
    straight = tmp_path / "straight"
    result = run_vggspec(*map(str, args[:-4]), "--out", straight, "--backend", backend, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    assert [without_seconds(row) for row in metrics(straight)] == [without_seconds(row) for row in after]
    # stopped after writing last but before metrics.csv: the checkpoint's own copy of the row restores it;
    # a resumed run can also be made longer
    finished = metrics(run)
    (run / "metrics.csv").write_text("".join((run / "metrics.csv").read_text().splitlines(keepends=True)[:3]))
    result = run_vggspec(*map(str, args), "--resume", "--epochs", "4", env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "after epoch 3 of 4" in result.stdout
    assert [int(row["epoch"]) for row in metrics(run)] == [1, 2, 3, 4]
    assert metrics(run)[:3] == finished


# ---- one fine-tuning step of the full VGG16 on converted weights ----


@pytest.fixture(scope="module")
def vgg16_h5(module_tmp) -> Path:
    """Random VGG16 weights (1000 classes) written as a Keras 2 .h5 file, as the converted files are."""
    import vggspec
    from vggspec.weights.bundle import WeightBundle
    from vggspec.weights.formats import write_bundle

    plan = vggspec.plan("vgg16")
    rng = np.random.default_rng(0)
    bundle = WeightBundle(
        {
            layer.name: {
                name: rng.standard_normal(shape, dtype=np.float32) * np.float32(0.01) for name, shape in layer.weights
            }
            for layer in plan.weighted_layers()
        }
    )
    path = module_tmp.mktemp("weights") / "vgg16_random.h5"
    write_bundle(path, bundle, plan)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_vgg16_finetuning_step_trains_the_head_only(backend, vgg16_h5, tmp_path):
    import vggspec
    from vggspec.weights.formats import read_bundle

    data = make_image_set(tmp_path / "data", size=224, train_per_class=1, val_per_class=1)
    run = tmp_path / "run"
    result = finetune(
        "vgg16",
        "--data",
        data,
        "--weights",
        vgg16_h5,
        "--epochs",
        1,
        "--batch-size",
        2,
        "--workers",
        0,
        "--out",
        run,
        backend=backend,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "skipped: " in result.stderr
        and "layer predictions: expected kernel of shape (4096, 2), received (4096, 1000)" in result.stderr
    )
    record = json.loads((run / "run.json").read_text())
    assert record["freeze"] == "block5_pool"  # the classic recipe with weights: the convolutional base
    plan = vggspec.plan(vggspec.spec_from_mapping(record["spec"]))
    before = read_bundle(vgg16_h5, vggspec.plan("vgg16"))
    after = read_bundle(run / record["checkpoints"]["last"], plan)
    assert sorted(after.layers) == sorted(layer.name for layer in plan.weighted_layers())
    for layer in plan.weighted_layers():
        if layer.name.startswith("block"):
            for name, array in after.layers[layer.name].items():
                np.testing.assert_array_equal(array, before.layers[layer.name][name], err_msg=layer.name)
    for name in ("fc1", "fc2"):
        change = np.abs(after.layers[name]["kernel"] - before.layers[name]["kernel"]).max()
        assert change > 1e-6, name  # one Adam step moves every weight with a gradient by about lr
    assert after.layers["predictions"]["kernel"].shape == (4096, 2)
    best = read_bundle(run / record["checkpoints"]["best"], plan)
    np.testing.assert_array_equal(best.layers["fc1"]["kernel"], after.layers["fc1"]["kernel"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_finetune_out_that_cannot_be_written(backend, cli, tmp_path, tiny_image_set):
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
            tiny_image_set,
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


def test_one_class_folder_is_refused(cli, tmp_path, tiny_image_set):
    data = tmp_path / "one_class"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
        os.symlink(tiny_image_set / split / "circles", data / split / "circles")
    result = cli("finetune", tiny_spec(tmp_path), "--data", data, "--backend", "torch", cwd=tmp_path)
    assert one_line(result) == (
        f"error: {data / 'train'}: expected at least 2 class folders (a classifier tells "
        "classes apart), received 1: circles"
    )
    assert not (tmp_path / "runs").exists()
