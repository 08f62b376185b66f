"""Training speed: ``vggspec finetune specs/examples/small64.yaml`` from scratch, torch and Keras.

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
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Case, figure, machine, measured_module, median, ratio, run_child

REPOSITORY = Path(__file__).resolve().parents[1]
SPEC = REPOSITORY / "specs" / "examples" / "small64.yaml"
BACKENDS = ("torch", "keras")
BATCH_SIZE = 16
ENV = {"OMP_NUM_THREADS": "1"}


def ratio_names() -> list[str]:
    return [*(f"finetune/{backend}/seconds_per_epoch" for backend in BACKENDS), "finetune/torch_vs_keras"]


def make_image_set(root: Path, train_per_class: int, val_per_class: int) -> Path:
    """The tests' generator (one copy of it), loaded from its file: tests/ is not a package."""
    spec = importlib.util.spec_from_file_location("vggspec_test_image_sets", REPOSITORY / "tests" / "image_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_image_set(root, size=64, train_per_class=train_per_class, val_per_class=val_per_class, seed=0)


def _train(backend: str, data: Path, out: Path, epochs: int) -> dict[str, Any]:
    """One run in a fresh process: per-epoch seconds from metrics.csv, wall time, peak memory."""
    print(f"finetune: {backend}, {epochs} epochs", file=sys.stderr, flush=True)
    command = measured_module(
        "vggspec",
        "finetune",
        str(SPEC),
        "--data",
        str(data),
        "--backend",
        backend,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(BATCH_SIZE),
        "--out",
        str(out),
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
    }


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
            except Exception as error:  # the other backend is still measured
                results[backend] = {"error": f"{type(error).__name__}: {error}"}
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
    return {
        "details": {
            "spec": str(SPEC.relative_to(REPOSITORY)),
            "epochs": case.finetune_epochs,
            "batch_size": BATCH_SIZE,
            "images_per_class": {"train": case.finetune_train_per_class, "val": case.finetune_val_per_class},
            "env": ENV,
            "machine": where,
            "backends": results,
        },
        "ratios": ratios,
    }
