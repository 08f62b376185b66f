"""`vggspec finetune --cache-features`: the frozen layers' outputs computed once, reused, never trusted half-written.

Runs are real (small64 on a drawn image set, torch and Keras; VGG16 at 224 in a slow test). The
cache's key is checked by runs that change one thing each (weights, freeze point, data), and the
atomic write by killing a run while it caches. torch runs get OMP_NUM_THREADS=1 (see test_finetune).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vggspec
from vggspec.errors import VggspecError
from vggspec.training.batches import ImageBatches
from vggspec.training.feature_cache import check_cacheable, plan_feature_cache
from vggspec.training.feature_cache.folder import FeatureBatches, open_cache
from vggspec.training.feature_cache.key import data_identity
from vggspec.training.feature_cache.writing import build_cache
from vggspec.training.folders import read_split
from vggspec.training.protocol import TrainConfig
from vggspec.training.protocol import freeze_names as frozen_layers

from conftest import SPECS, run_vggspec, started_in_own_session
from image_sets import make_image_set

SMALL = SPECS / "examples" / "small64.yaml"
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
COMPUTING = "features: computing the outputs of "
REUSING = "features: reusing "


def two_class_plan():
    return vggspec.plan(vggspec.spec_from_mapping({**vggspec.spec_to_mapping(vggspec.load_spec(SMALL)), "classes": 2}))


def he_weights(plan, seed: int, input_spread: float) -> dict[str, dict[str, np.ndarray]]:
    """Random weights with He scaling, the first convolution's divided by ``input_spread`` (the preprocessed
    pixels' spread): features of order 1, as a trained network's."""
    rng = np.random.default_rng(seed)
    layers = {}
    for index, layer in enumerate(plan.weighted_layers()):
        layers[layer.name] = {
            name: rng.standard_normal(shape, dtype=np.float32)
            * np.float32(np.sqrt(2 / np.prod(shape[:-1])) / (input_spread if index == 0 else 1))
            if name == "kernel"
            else np.zeros(shape, np.float32)
            for name, shape in layer.weights
        }
    return layers


def write_weights(path: Path, plan, seed: int = 0) -> Path:
    from vggspec.weights.bundle import WeightBundle
    from vggspec.weights.formats import write_bundle

    spread = 64.0 if plan.preprocessing == "caffe" else 1.0
    write_bundle(path, WeightBundle(he_weights(plan, seed, spread)), plan)
    return path


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def finetune(*args: object, backend: str = "torch", env: dict | None = None, timeout: float = 600):
    return run_vggspec(
        "finetune", *map(str, args), "--backend", backend, env={**ONE_THREAD, **(env or {})}, timeout=timeout
    )


def complete_caches(cache_dir: Path) -> list[Path]:
    return sorted(path for path in cache_dir.iterdir() if not path.name.startswith(".")) if cache_dir.exists() else []


@pytest.fixture(scope="module")
def tiny_set(module_tmp) -> Path:
    """24 training and 8 validation images per class, 64x64."""
    return make_image_set(module_tmp.mktemp("tiny"), size=64, train_per_class=24, val_per_class=8, seed=1)


@pytest.fixture(scope="module")
def small_weights(module_tmp) -> Path:
    return write_weights(module_tmp.mktemp("weights") / "small64.safetensors", two_class_plan())


# ---- what may be cached (no framework) ----


@pytest.mark.parametrize(
    "freeze, augment, expected",
    [
        (
            "none",
            "none",
            "expected frozen layers to cache the outputs of (e.g. freeze block5_pool), received freeze none",
        ),
        ("input_layer", "none", "received freeze input_layer"),
        ("fc1_dropout", "none", "received freeze fc1_dropout, which includes the dropout layer fc1_dropout"),
        ("block3_pool", "flip,crop", "expected augment none (each image's features are computed once, so every "),
        ("block3_pool", "flip", "received augment flip"),
    ],
)
def test_what_cannot_be_cached_is_refused_naming_the_setting(freeze, augment, expected):
    plan = two_class_plan()
    config = TrainConfig(
        freeze=frozen_layers([layer.name for layer in plan.layers], freeze), augment=augment, cache_features=True
    )
    with pytest.raises(VggspecError) as caught:
        check_cacheable(plan, config)
    assert caught.value.setting == "cache_features"
    assert str(caught.value).startswith("cache_features: expected ") and expected in str(caught.value)
    fc1 = frozen_layers([layer.name for layer in plan.layers], "fc1")
    check_cacheable(plan, TrainConfig(freeze=fc1, augment="none"))  # the flattened map and fc1: deterministic
    with pytest.raises(VggspecError, match="expected one process"):
        check_cacheable(plan, TrainConfig(freeze=fc1, augment="none"), world_size=2)


@pytest.mark.parametrize(
    "case",
    ["augmentation on", "nothing frozen", "dropout frozen", "bad dtype"],
)
def test_refusals_exit_2_with_one_line_and_write_nothing(case, tiny_set, small_weights, tmp_path):
    args, expected = {
        "augmentation on": (
            ["--weights", small_weights, "--cache-features"],
            "error: --cache-features: expected augment none (each image's features are computed once, so every "
            "epoch must see the same image), received augment flip,crop",
        ),
        "nothing frozen": (
            ["--cache-features", "--augment", "none"],
            "error: --cache-features: expected frozen layers to cache the outputs of (e.g. freeze block5_pool), "
            "received freeze none",
        ),
        "dropout frozen": (
            ["--weights", small_weights, "--freeze", "fc1_dropout", "--cache-features", "--augment", "none"],
            "error: --cache-features: expected frozen layers that give the same outputs every epoch, received "
            "freeze fc1_dropout, which includes the dropout layer fc1_dropout",
        ),
        "bad dtype": (["--cache-features", "--cache-dtype", "int8"], "argument --cache-dtype: invalid choice"),
    }[case]
    result = finetune(SMALL, "--data", tiny_set, *args, "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    if case == "bad dtype":  # argparse: the usage, then its error
        assert expected in lines[-1]
    else:
        assert lines == [expected]
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


# ---- cached training equals uncached training ----


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_cached_epochs_equal_uncached_ones(backend, tiny_set, small_weights, tmp_path):
    """Frozen up to block3_pool (the default with weights), --augment none, 3 epochs: the same losses and
    validation accuracy (within one image) with and without the cache; the checkpoints are the whole model's."""
    common = ["--data", tiny_set, "--weights", small_weights, "--augment", "none", "--epochs", 3]
    common += ["--batch-size", 8, "--workers", 0]
    plain = finetune(SMALL, *common, "--out", tmp_path / "plain", backend=backend)
    assert plain.returncode == 0, plain.stderr
    cached = finetune(
        SMALL,
        *common,
        "--cache-features",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        tmp_path / "cached",
        backend=backend,
    )
    assert cached.returncode == 0, cached.stderr
    assert COMPUTING + "block3_pool once for 48 training and 16 validation images into " in cached.stdout
    assert f"{backend}, frozen up to block3_pool, features cached (float32)" in cached.stdout
    assert COMPUTING not in plain.stdout
    uncached_rows, cached_rows = metrics(tmp_path / "plain"), metrics(tmp_path / "cached")
    assert [row["epoch"] for row in cached_rows] == ["1", "2", "3"]
    for before, after in zip(uncached_rows, cached_rows):
        assert abs(float(after["val_accuracy"]) - float(before["val_accuracy"])) * 16 <= 1 + 1e-9
        assert float(after["train_loss"]) == pytest.approx(float(before["train_loss"]), abs=2e-3)
        assert float(after["val_loss"]) == pytest.approx(float(before["val_loss"]), abs=2e-3)
    # the checkpoint is the whole model: frozen layers as loaded, the rest trained
    from vggspec.weights.formats import read_bundle

    record = json.loads((tmp_path / "cached" / "run.json").read_text())
    assert record["config"]["cache_features"] is True and record["config"]["augment"] == "none"
    plan = two_class_plan()
    start = read_bundle(small_weights, plan)
    last = read_bundle(tmp_path / "cached" / record["checkpoints"]["last"], plan)
    plain_last = read_bundle(tmp_path / "plain" / record["checkpoints"]["last"], plan)
    np.testing.assert_array_equal(last.layers["block2_conv1"]["kernel"], start.layers["block2_conv1"]["kernel"])
    assert np.abs(last.layers["fc1"]["kernel"] - start.layers["fc1"]["kernel"]).max() > 1e-4
    np.testing.assert_allclose(last.layers["fc1"]["kernel"], plain_last.layers["fc1"]["kernel"], atol=1e-3)


@pytest.mark.parametrize("freeze", ["flatten", "fc1", "block2_conv1"])
def test_any_deterministic_freeze_point_trains_alike(freeze, tiny_set, small_weights, tmp_path):
    """torch splits its module tree at a map, the flattened vector (H,W,C order, as cached) or a dense layer."""
    common = ["--data", tiny_set, "--weights", small_weights, "--freeze", freeze, "--augment", "none"]
    common += ["--epochs", 2, "--batch-size", 8, "--workers", 0]
    plain = finetune(SMALL, *common, "--out", tmp_path / "plain")
    cached = finetune(SMALL, *common, "--cache-features", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "c")
    assert plain.returncode == 0 and cached.returncode == 0, plain.stderr + cached.stderr
    for before, after in zip(metrics(tmp_path / "plain"), metrics(tmp_path / "c")):
        assert float(after["train_loss"]) == pytest.approx(float(before["train_loss"]), abs=1e-4)
        assert float(after["val_loss"]) == pytest.approx(float(before["val_loss"]), abs=1e-4)


# ---- reused when nothing changed; recomputed when the weights, the freeze point or the data change ----


@pytest.mark.slow  # 29 s
def test_cache_is_reused_and_invalidated_by_weights_freeze_and_data(tiny_set, small_weights, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_set, data)
    cache = tmp_path / "cache"
    common = ["--augment", "none", "--cache-features", "--cache-dir", cache, "--epochs", 1, "--batch-size", 8]
    common += ["--workers", 0]

    def run(name: str, weights: Path = small_weights, *extra: object):
        result = finetune(SMALL, "--data", data, "--weights", weights, *common, *extra, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        return result

    first = run("first")
    assert COMPUTING in first.stdout and REUSING not in first.stdout
    (folder,) = complete_caches(cache)
    assert folder.name.startswith("small64-block3_pool-torch-float32-")
    about = json.loads((folder / "cache.json").read_text())
    assert (about["layer"], about["shape"], about["images"]) == ("block3_pool", [8, 8, 64], {"train": 48, "val": 16})
    train = np.load(folder / "train.npy", mmap_mode="r")
    assert train.shape == (48, 8, 8, 64) and train.dtype == np.float32 and float(np.abs(train).max()) > 0
    written = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}

    second = run("second")  # the same data, weights and freeze point: no forward pass of the frozen layers
    assert REUSING + str(folder) in second.stdout and COMPUTING not in second.stdout
    assert {path.name: path.stat().st_mtime_ns for path in folder.iterdir()} == written
    assert metrics(tmp_path / "second")[0] | {"seconds": ""} == metrics(tmp_path / "first")[0] | {"seconds": ""}
    assert complete_caches(cache) == [folder]

    other_weights = write_weights(tmp_path / "other.safetensors", two_class_plan(), seed=1)
    assert COMPUTING in run("weights", other_weights).stdout
    assert COMPUTING + "block2_pool" in run("freeze", small_weights, "--freeze", "block2_pool").stdout
    assert len(complete_caches(cache)) == 3

    image = sorted((data / "val" / "stripes").iterdir())[0]
    image.write_bytes((data / "val" / "circles" / sorted(os.listdir(data / "val" / "circles"))[0]).read_bytes())
    assert COMPUTING in run("run-data").stdout  # one image's bytes changed
    assert REUSING in run("run-data-again").stdout
    assert len(complete_caches(cache)) == 4


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_a_resumed_run_reuses_the_cache_and_trains_as_a_straight_run(backend, tiny_set, small_weights, tmp_path):
    """Two cached epochs, then --resume to three: the features are read again, not computed, and every
    epoch's numbers are those of three epochs in one run (weights, optimizer state and dropout continue)."""
    common = ["--data", tiny_set, "--weights", small_weights, "--augment", "none", "--cache-features"]
    common += ["--cache-dir", tmp_path / "cache", "--batch-size", 8, "--workers", 0]
    first = finetune(SMALL, *common, "--epochs", 2, "--out", tmp_path / "run", backend=backend)
    assert first.returncode == 0 and COMPUTING in first.stdout, first.stderr
    resumed = finetune(SMALL, *common, "--epochs", 3, "--out", tmp_path / "run", "--resume", backend=backend)
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 2 of 3" in resumed.stdout
    assert REUSING in resumed.stdout and COMPUTING not in resumed.stdout
    straight = finetune(SMALL, *common, "--epochs", 3, "--out", tmp_path / "straight", backend=backend)
    assert straight.returncode == 0 and REUSING in straight.stdout, straight.stderr
    rows = [row | {"seconds": ""} for row in metrics(tmp_path / "run")]
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert rows == [row | {"seconds": ""} for row in metrics(tmp_path / "straight")]


def test_the_default_cache_is_under_vggspec_home(tiny_set, small_weights, tmp_path):
    result = run_vggspec(
        "finetune", SMALL, "--data", tiny_set, "--weights", small_weights, "--augment", "none", "--cache-features",
        "--cache-dtype", "float16", "--epochs", 1, "--workers", 0, "--backend", "torch", "--out", tmp_path / "run",
        env={**ONE_THREAD, "VGGSPEC_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (folder,) = complete_caches(tmp_path / "home" / "features")
    assert folder.name.startswith("small64-block3_pool-torch-float16-")
    assert np.load(folder / "val.npy", mmap_mode="r").dtype == np.float16


def test_data_identity_follows_every_image_and_the_manifest(tiny_set, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_set, data)
    splits = {split: read_split(data, split) for split in ("train", "val")}
    without = data_identity(data, splits)
    image = splits["train"].paths[0]
    os.utime(image, ns=(0, 0))
    touched = data_identity(data, splits)
    assert touched != without and touched["val"] == without["val"]  # no manifest: sizes and mtimes count
    (data / "manifest.json").write_text('{"images": 64}')
    with_manifest = data_identity(data, splits)
    assert with_manifest != touched and with_manifest["train"] == touched["train"]
    os.utime(image, ns=(10**9, 10**9))
    moved = data_identity(data, splits)  # with a manifest too: an image written after it is seen
    assert moved != with_manifest and moved["val"] == with_manifest["val"]
    with open(image, "ab") as file:
        file.write(b"\0")
    os.utime(image, ns=(10**9, 10**9))
    assert data_identity(data, splits) != moved  # the size alone
    (data / "manifest.json").write_text('{"images": 65}')
    assert data_identity(data, splits)["manifest_sha256"] != moved["manifest_sha256"]


def test_images_overwritten_in_place_are_computed_again_despite_the_manifest(tiny_set, small_weights, tmp_path):
    """A data folder with a manifest.json (as `vggspec data` writes), cached once; then every image is
    overwritten in place, same names, other pixels: the next run computes the features again."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_set, data)
    (data / "manifest.json").write_text('{"dataset": "drawn shapes", "counts": {"train": 48, "val": 16}}\n')
    cache = tmp_path / "cache"
    common = ["--data", data, "--weights", small_weights, "--augment", "none", "--cache-features"]
    common += ["--cache-dir", cache, "--epochs", 1, "--batch-size", 8, "--workers", 0]
    first = finetune(SMALL, *common, "--out", tmp_path / "first")
    assert first.returncode == 0 and COMPUTING in first.stdout, first.stderr
    (old,) = complete_caches(cache)
    other = make_image_set(tmp_path / "other", size=64, train_per_class=24, val_per_class=8, seed=7)
    images = sorted(data.rglob("*.jpg"))
    assert len(images) == 64
    for image in images:
        replacement = (other / image.relative_to(data)).read_bytes()
        assert replacement != image.read_bytes()
        with open(image, "r+b") as file:  # in place: the same file, truncated and written again
            file.truncate(0)
            file.write(replacement)
    second = finetune(SMALL, *common, "--out", tmp_path / "second")
    assert second.returncode == 0, second.stderr
    assert COMPUTING in second.stdout and REUSING not in second.stdout
    assert len(complete_caches(cache)) == 2 and old in complete_caches(cache)
    new = next(folder for folder in complete_caches(cache) if folder != old)
    assert not np.array_equal(np.load(new / "train.npy"), np.load(old / "train.npy"))


# ---- written atomically: an interrupted pass leaves nothing a later run trusts ----


class FakeTrainer:
    """frozen_features: the mean of each image, broadcast to (2, 2, 3); raises at batch ``fail_at``."""

    def __init__(self, fail_at: int = -1, scale: float = 1.0):
        self.calls = 0
        self.fail_at = fail_at
        self.scale = scale

    def frozen_features(self, images: np.ndarray) -> np.ndarray:
        if self.calls == self.fail_at:
            raise RuntimeError("the frozen layers failed")
        self.calls += 1
        means = images.mean(axis=(1, 2, 3), dtype=np.float32) * np.float32(self.scale)
        return np.broadcast_to(means[:, None, None, None], (len(images), 2, 2, 3)).astype(np.float32)


def fake_cache(data: Path, cache_dir: Path, dtype: str = "float32"):
    import dataclasses

    plan = two_class_plan()
    config = TrainConfig(
        freeze=frozen_layers([layer.name for layer in plan.layers], "block1_pool"),
        augment="none",
        cache_features=True,
        cache_dtype=dtype,
        cache_dir=str(cache_dir),
        batch_size=8,
    )
    images = {
        split: ImageBatches(read_split(data, split), (64, 64), "tf", 8, train=False) for split in ("train", "val")
    }
    cache = plan_feature_cache(plan, config, "fake", None, data, images)
    return dataclasses.replace(cache, shape=(2, 2, 3))


@pytest.mark.parametrize("stop", ["error", "interrupt"])
def test_a_failed_or_stopped_pass_leaves_no_folder(stop, tiny_set, tmp_path):
    cache = fake_cache(tiny_set, tmp_path / "cache")
    trainer = FakeTrainer(fail_at=4 if stop == "error" else -1)
    batches = []

    def check():
        batches.append(1)
        if stop == "interrupt" and len(batches) == 3:
            raise KeyboardInterrupt

    with pytest.raises(RuntimeError if stop == "error" else KeyboardInterrupt):
        build_cache(cache, trainer, check)
    assert list((tmp_path / "cache").iterdir()) == []
    assert open_cache(cache) == "absent"
    build_cache(cache, FakeTrainer())
    assert open_cache(cache) is None and complete_caches(tmp_path / "cache") == [cache.folder]


def test_float16_that_overflows_is_refused(tiny_set, tmp_path):
    cache = fake_cache(tiny_set, tmp_path / "cache", dtype="float16")
    with pytest.raises(VggspecError) as caught:
        build_cache(cache, FakeTrainer(scale=1e6))
    assert caught.value.setting == "cache_dtype" and "cache them as float32" in str(caught.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_damaged_complete_cache_is_computed_again(tiny_set, tmp_path):
    from vggspec.training.feature_cache import cached_batches

    cache = fake_cache(tiny_set, tmp_path / "cache")
    build_cache(cache, FakeTrainer())
    path = cache.folder / "train.npy"
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    assert "cannot be read" in str(open_cache(cache))
    said: list[str] = []
    train, val = cached_batches(cache, FakeTrainer(), 8, 0, said.append)
    assert said[0].startswith("features: computing them again (") and said[1].startswith(COMPUTING)
    assert open_cache(cache) is None and len(train) == 6 and len(val) == 2


def test_feature_batches_visit_as_image_batches_do(tiny_set, tmp_path):
    cache = fake_cache(tiny_set, tmp_path / "cache")
    build_cache(cache, FakeTrainer())
    images = read_split(tiny_set, "train")
    features = FeatureBatches(cache.array_path("train"), images.labels, 8, train=True, seed=3)
    pictures = ImageBatches(images, (64, 64), "tf", 8, train=True, seed=3, augment="none")
    for epoch in (1, 2):
        features.set_epoch(epoch)
        pictures.set_epoch(epoch)
        np.testing.assert_array_equal(features.order, pictures.order)
        np.testing.assert_array_equal(features.labels, pictures.labels)
        x, y = features.batch(1)
        pixels, labels = pictures.batch(1)
        np.testing.assert_array_equal(y, labels)
        np.testing.assert_allclose(x[:, 0, 0, 0], pixels.mean(axis=(1, 2, 3)), rtol=1e-5)
    assert x.dtype == np.float32 and x.shape == (8, 2, 2, 3)
    copy = pickle.loads(pickle.dumps(features))  # a DataLoader worker's copy: the path, not the array
    assert copy._features is None and len(pickle.dumps(features)) < 5000
    np.testing.assert_array_equal(copy.batch(0)[0], features.batch(0)[0])


def test_a_killed_caching_pass_is_never_trusted(tmp_path):
    """SIGKILL while the features are being written: a partial folder stays, a later run does not read it,
    computes the cache again and removes the dead run's partial folder."""
    data = make_image_set(tmp_path / "data", size=64, train_per_class=200, val_per_class=10, seed=2)
    weights = write_weights(tmp_path / "w.safetensors", two_class_plan())
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "vggspec", "finetune", SMALL, "--data", data, "--weights", weights]
    args += ["--augment", "none", "--cache-features", "--cache-dir", cache, "--batch-size", 1, "--epochs", 1]
    args += ["--workers", 0, "--backend", "torch"]
    with started_in_own_session(
        [*map(str, args), "--out", str(tmp_path / "killed")],
        env={**os.environ, **ONE_THREAD},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:
        deadline = time.monotonic() + 300
        partial: list[Path] = []
        while not partial:
            assert process.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline
            partial = [p for p in cache.glob(".*.partial-*") if (p / "train.npy").is_file()] if cache.is_dir() else []
            time.sleep(0.01)
        time.sleep(0.3)  # some batches written
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    (left,) = partial
    assert left.is_dir() and (left / "train.npy").stat().st_size > 0 and not (left / "cache.json").exists()
    assert complete_caches(cache) == []
    again = run_vggspec(*map(str, args[3:]), "--out", tmp_path / "again", env=ONE_THREAD)
    assert again.returncode == 0, again.stderr
    assert COMPUTING in again.stdout and REUSING not in again.stdout
    assert not left.exists() and [p.name for p in cache.iterdir() if p.name.startswith(".")] == []
    (folder,) = complete_caches(cache)
    assert np.load(folder / "train.npy", mmap_mode="r").shape == (400, 8, 8, 64)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_vgg16_cached_equals_uncached(backend, tmp_path):
    """VGG16 at 224x224, a 2-way head on the base frozen up to block5_pool, 3 epochs, --augment none."""
    import vggspec

    plan = vggspec.plan("vgg16")
    weights = write_weights(tmp_path / "vgg16_random.h5", plan)
    data = make_image_set(tmp_path / "data", size=224, train_per_class=4, val_per_class=3, seed=3)
    common = ["--data", data, "--weights", weights, "--augment", "none", "--epochs", 3, "--batch-size", 4]
    common += ["--workers", 0]
    plain = finetune("vgg16", *common, "--out", tmp_path / "plain", backend=backend, timeout=1200)
    assert plain.returncode == 0, plain.stderr
    cached = finetune(
        "vgg16", *common, "--cache-features", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "cached",
        backend=backend, timeout=1200,
    )  # fmt: skip
    assert cached.returncode == 0, cached.stderr
    assert COMPUTING + "block5_pool once for 8 training and 6 validation images" in cached.stdout
    before, after = metrics(tmp_path / "plain")[-1], metrics(tmp_path / "cached")[-1]
    assert abs(float(after["val_accuracy"]) - float(before["val_accuracy"])) * 6 <= 1 + 1e-9
    print(
        f"{backend}: val_accuracy {before['val_accuracy']} uncached, {after['val_accuracy']} cached; seconds per "
        f"epoch {[row['seconds'] for row in metrics(tmp_path / 'plain')]} vs "
        f"{[row['seconds'] for row in metrics(tmp_path / 'cached')]}"
    )
