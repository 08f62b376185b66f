"""Training speed: ``vggspec finetune`` from scratch on a small spec, and VGG16 on a frozen base, cached or not.

**From scratch**: ``specs/examples/small64.yaml``, torch and Keras.

The data is the test suite's drawn two-class image set (``tests/image_sets.py``, 64x64
JPEGs; 200 training and 60 validation images per class, as in the slow test that trains
to 95 %), written once into a temporary folder. Each backend trains in a fresh
``python -m vggspec finetune`` process with ``OMP_NUM_THREADS=1``, as the tests run it
(on two shared cores torch's OpenMP threads otherwise wait on each other), batch 16.

The figures are seconds per epoch (training and validation, the ``seconds`` column of
metrics.csv): the median of the epochs after the first, which also pays for tracing
(Keras) and the first data reads; and the torch / Keras ratio of those. The note of each
figure names the machine: the seconds are only comparable on the same one. Start-up and
teardown (process start to exit minus the epochs) are in the details.

**VGG16 on a frozen base** (the classic fine-tuning job): the case's VGG16 (224x224, or
32x32 with ``--quick``) with a 2-class head, frozen up to ``block5_pool``, from random
VGG16 weights (He-scaled, so that the features stay of order 1) written as a Keras .h5
file; the drawn two-class set at the case's input size (full: 64 training and 32
validation images per class, 192 in all), 3 epochs, batch 32, ``--augment none``, Adam with
``--lr 1e-5`` (on random features a larger rate diverges and the head learns nothing), in each
backend without and with ``--cache-features`` (a fresh cache folder: the first run
computes the features). Figures: the seconds per epoch (the median of epochs 2-3, as
metrics.csv counts them: training and validation, not the checkpoints) of both, their
ratio (goal: the cached epochs at least 20 times faster), the one-time caching pass (its
own printed seconds) and whether the last epoch's validation accuracy is the uncached
run's within one image. The same ``OMP_NUM_THREADS=1`` as above; TensorFlow uses its own
thread pool over both cores.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import Case, figure, machine, measured_module, median, ratio, run_child

REPOSITORY = Path(__file__).resolve().parents[1]
SPEC = REPOSITORY / "specs" / "examples" / "small64.yaml"
BACKENDS = ("torch", "keras")
BATCH_SIZE = 16
ENV = {"OMP_NUM_THREADS": "1"}
VGG16_FREEZE = "block5_pool"
VGG16_EPOCHS = 3
VGG16_BATCH_SIZE = 32
VGG16_LEARNING_RATE = "1e-5"
SPEEDUP_GOAL = (">=", 20.0)
CACHED_IN = re.compile(r"^features: cached in ([0-9.]+) s$", re.MULTILINE)


def ratio_names() -> list[str]:
    return [
        *(f"finetune/{backend}/seconds_per_epoch" for backend in BACKENDS),
        "finetune/torch_vs_keras",
        *(
            f"finetune/vgg16_frozen/{backend}/{what}"
            for backend in BACKENDS
            for what in (
                "uncached_seconds_per_epoch",
                "cached_seconds_per_epoch",
                "cached_speedup",
                "caching_seconds",
                "val_accuracy_within_one_image",
            )
        ),
    ]


def make_image_set(root: Path, train_per_class: int, val_per_class: int, size: int = 64) -> Path:
    """The tests' generator (one copy of it), loaded from its file: tests/ is not a package."""
    spec = importlib.util.spec_from_file_location("vggspec_test_image_sets", REPOSITORY / "tests" / "image_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_image_set(root, size=size, train_per_class=train_per_class, val_per_class=val_per_class, seed=0)


def _train(
    backend: str,
    data: Path,
    out: Path,
    epochs: int,
    spec: str = str(SPEC),
    options: Sequence[str] = (),
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """One run in a fresh process: per-epoch seconds from metrics.csv, wall time, peak memory, what it printed."""
    print(f"finetune: {Path(spec).name}, {backend}, {epochs} epochs {' '.join(options)}", file=sys.stderr, flush=True)
    command = measured_module(
        "vggspec",
        "finetune",
        spec,
        "--data",
        str(data),
        "--backend",
        backend,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
        *options,
    )
    run = run_child(command, env={**os.environ, **ENV})
    if run.returncode != 0:
        last = run.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"vggspec finetune --backend {backend} exited with status {run.returncode}: {last[0]}")
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    seconds = [float(row["seconds"]) for row in rows]
    steady = seconds[1:] or seconds
    return {
        "epoch_seconds": seconds,
        "seconds_per_epoch": round(median(steady), 3),
        "wall_s": round(run.wall_s, 3),
        "startup_and_teardown_s": round(run.wall_s - sum(seconds), 3),
        "final_val_accuracy": float(rows[-1]["val_accuracy"]),
        "peak_rss_bytes": run.max_rss_bytes,
        "stdout": run.stdout,
    }


def write_vgg16_weights(path: Path, plan: Any, seed: int = 0) -> Path:
    """Random weights for ``plan`` with He scaling (kernel std sqrt(2 / fan-in), zero biases; the first
    convolution's divided by 64, the spread of caffe-preprocessed pixels), so that a frozen base's features
    stay of order 1 as a trained network's do; written as ``path`` says (.h5: Keras 2)."""
    import numpy as np

    from vggspec.weights.bundle import WeightBundle
    from vggspec.weights.formats import write_bundle

    rng = np.random.default_rng(seed)
    layers = {}
    for index, layer in enumerate(plan.weighted_layers()):
        arrays = {}
        for name, shape in layer.weights:
            std = np.sqrt(2.0 / np.prod(shape[:-1])) / (64 if index == 0 else 1) if name == "kernel" else 0.0
            arrays[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        layers[layer.name] = arrays
    write_bundle(path, WeightBundle(layers, source="benchmarks/finetune.py"), plan)
    return path


def _vgg16_frozen(case: Case, directory: Path) -> dict[str, Any]:
    """Per backend: an uncached and a cached run of the case's VGG16 frozen up to block5_pool (see the module)."""
    import vggspec

    spec = case.spec_argument(str(directory))
    weights = write_vgg16_weights(directory / "vgg16_random.h5", vggspec.plan(case.spec()))
    data = make_image_set(
        directory / "data-vgg16", case.vgg16_train_per_class, case.vgg16_val_per_class, size=case.input_size
    )
    common = ["--weights", str(weights), "--freeze", VGG16_FREEZE, "--augment", "none", "--lr", VGG16_LEARNING_RATE]
    results: dict[str, Any] = {}
    for backend in BACKENDS:
        runs: dict[str, Any] = {}
        for cached in (False, True):
            name = "cached" if cached else "uncached"
            options = [*common, "--cache-features", "--cache-dir", str(directory / "cache")] if cached else common
            try:
                out = directory / f"vgg16-{backend}-{name}"
                run = _train(backend, data, out, VGG16_EPOCHS, spec, options, VGG16_BATCH_SIZE)
            except Exception as error:  # the other runs are still measured
                runs[name] = {"error": f"{type(error).__name__}: {error}"}
                continue
            said = CACHED_IN.search(run.pop("stdout"))
            run["caching_s"] = float(said.group(1)) if cached and said else None
            runs[name] = run
        results[backend] = runs
    return results


def _vgg16_figures(results: dict[str, Any], case: Case, where: str) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    val_images = 2 * case.vgg16_val_per_class
    for backend, runs in results.items():
        prefix = f"finetune/vgg16_frozen/{backend}"
        failed = [f"{name}: {run['error']}" for name, run in runs.items() if "error" in run]
        if failed:
            for what in ("uncached_seconds_per_epoch", "cached_seconds_per_epoch", "cached_speedup"):
                ratios[f"{prefix}/{what}"] = figure(None, reason="; ".join(failed))
            ratios[f"{prefix}/caching_seconds"] = figure(None, reason="; ".join(failed))
            ratios[f"{prefix}/val_accuracy_within_one_image"] = figure(None, reason="; ".join(failed))
            continue
        uncached, cached = runs["uncached"], runs["cached"]
        counted = f"median of epochs 2-{VGG16_EPOCHS}; {where}"
        ratios[f"{prefix}/uncached_seconds_per_epoch"] = figure(uncached["seconds_per_epoch"], unit="s", note=counted)
        ratios[f"{prefix}/cached_seconds_per_epoch"] = figure(cached["seconds_per_epoch"], unit="s", note=counted)
        ratios[f"{prefix}/cached_speedup"] = figure(
            ratio(uncached["seconds_per_epoch"], cached["seconds_per_epoch"]),
            goal=SPEEDUP_GOAL,
            note=f"{uncached['seconds_per_epoch']:.2f} s vs {cached['seconds_per_epoch']:.3f} s per epoch "
            f"({2 * case.vgg16_train_per_class} training, {val_images} validation images, batch {VGG16_BATCH_SIZE})",
        )
        caching = cached["caching_s"]
        ratios[f"{prefix}/caching_seconds"] = (
            figure(caching, unit="s", note=f"once, for all {2 * case.vgg16_train_per_class + val_images} images")
            if caching is not None
            else figure(None, reason="the cached run printed no 'features: cached in' line")
        )
        difference = round(abs(cached["final_val_accuracy"] - uncached["final_val_accuracy"]) * val_images)
        ratios[f"{prefix}/val_accuracy_within_one_image"] = figure(
            difference <= 1,
            unit="bool",
            goal=("==", True),
            note=f"epoch {VGG16_EPOCHS}: cached {cached['final_val_accuracy']:.4f}, uncached "
            f"{uncached['final_val_accuracy']:.4f} of {val_images} images",
        )
    return ratios


def measure(case: Case) -> dict[str, Any]:
    about = machine()
    where = f"{about['cpu']}, {about['usable_cpus']} usable CPUs, OMP_NUM_THREADS=1"
    directory = Path(tempfile.mkdtemp(prefix="vggspec-bench-"))
    results: dict[str, Any] = {}
    try:
        data = make_image_set(directory / "data", case.finetune_train_per_class, case.finetune_val_per_class)
        for backend in BACKENDS:
            try:
                results[backend] = _train(backend, data, directory / f"run-{backend}", case.finetune_epochs)
                del results[backend]["stdout"]
            except Exception as error:  # the other backend is still measured
                results[backend] = {"error": f"{type(error).__name__}: {error}"}
        try:
            vgg16 = _vgg16_frozen(case, directory)
        except Exception as error:  # writing the weights or the images failed
            vgg16 = {backend: {"setup": {"error": f"{type(error).__name__}: {error}"}} for backend in BACKENDS}
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    ratios: dict[str, Any] = {}
    for backend, result in results.items():
        name = f"finetune/{backend}/seconds_per_epoch"
        if "error" in result:
            ratios[name] = figure(None, unit="s", reason=result["error"])
            continue
        counted = "epoch 2" if case.finetune_epochs == 2 else f"median of epochs 2-{case.finetune_epochs}"
        ratios[name] = figure(result["seconds_per_epoch"], unit="s", note=f"{counted}; {where}")
    torch_s, keras_s = (results[b].get("seconds_per_epoch") for b in BACKENDS)
    ratios["finetune/torch_vs_keras"] = (
        figure(ratio(torch_s, keras_s), note=f"{torch_s:.2f} vs {keras_s:.2f} s per epoch; {where}")
        if torch_s and keras_s
        else figure(None, reason="a backend's run failed (see its figure)")
    )
    ratios.update(_vgg16_figures(vgg16, case, where))
    return {
        "details": {
            "spec": str(SPEC.relative_to(REPOSITORY)),
            "epochs": case.finetune_epochs,
            "batch_size": BATCH_SIZE,
            "images_per_class": {"train": case.finetune_train_per_class, "val": case.finetune_val_per_class},
            "env": ENV,
            "machine": where,
            "backends": results,
            "vgg16_frozen": {
                "spec": case.name,
                "input_size": case.input_size,
                "freeze": VGG16_FREEZE,
                "epochs": VGG16_EPOCHS,
                "batch_size": VGG16_BATCH_SIZE,
                "learning_rate": float(VGG16_LEARNING_RATE),
                "images_per_class": {"train": case.vgg16_train_per_class, "val": case.vgg16_val_per_class},
                "backends": vgg16,
            },
        },
        "ratios": ratios,
    }
