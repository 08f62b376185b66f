"""Keras fine-tuning in two TensorFlow workers, as two machines run it: `vggspec finetune --backend keras`
in two processes that TF_CONFIG joins (MultiWorkerMirroredStrategy) on 127.0.0.1.

Each worker trains its shard of every global batch; the strategy sums the gradients, so both end with
the same parameters (``ranks_agree``), and the run matches one process given the whole global batch.
Every run has a time limit, and every process a test starts is killed when the test ends.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import SPECS, free_port, run_vggspec, side_by_side, wait_side_by_side
from image_sets import make_image_set

SMALL = SPECS / "examples" / "small64.yaml"
RUN_TIMEOUT_S = 120  # a two-worker run here takes about 15 s
WORKER_ENV = {"KERAS_BACKEND": "tensorflow", "OMP_NUM_THREADS": "1"}
REPEATS = 10


def tf_config(ports: list[int], index: int) -> str:
    """TF_CONFIG of worker ``index`` of a cluster of workers on 127.0.0.1 at ``ports``, as TensorFlow documents it."""
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
    )


def worker_runs(args: list, workers: int = 2) -> list[tuple[list, dict]]:
    """(command, environment) of each worker of one `vggspec finetune ARGS` run."""
    ports = [free_port() for _ in range(workers)]
    command = [sys.executable, "-m", "vggspec", "finetune", *map(str, args)]
    return [(command, {**os.environ, **WORKER_ENV, "TF_CONFIG": tf_config(ports, index)}) for index in range(workers)]


def finetune_args(spec: Path, data: Path, run: Path, epochs: int, batch: int, *more: object) -> list:
    return [spec, "--data", data, "--backend", "keras", "--epochs", epochs, "--batch-size", batch, "--out", run, *more]


def train_in_workers(args: list, folder: Path, timeout: float = RUN_TIMEOUT_S) -> list[tuple[int, str]]:
    """(exit status, output) of each worker; -1 for one that outlived ``timeout`` (then killed)."""
    folder.mkdir(parents=True, exist_ok=True)
    with side_by_side(worker_runs(args), folder) as started:
        return wait_side_by_side(started, timeout)


def metrics(run: Path) -> list[dict[str, float]]:
    with open(run / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def small_set(module_tmp) -> Path:
    """40 training and 10 validation images per class, 64x64."""
    return make_image_set(module_tmp.mktemp("workers"), size=64, train_per_class=40, val_per_class=10, seed=2)


def test_two_tensorflow_workers_train_the_small_spec_and_agree(small_set, tmp_path):
    run = tmp_path / "run"
    results = train_in_workers(finetune_args(SMALL, small_set, run, 2, 8, "--workers", 1), tmp_path / "out")
    assert [status for status, _ in results] == [0, 0], "\n".join(output[-3000:] for _, output in results)
    record = json.loads((run / "run.json").read_text())
    assert (record["world_size"], record["ranks_agree"], record["epochs_done"]) == (2, True, 2)
    assert [row["epoch"] for row in metrics(run)] == [1, 2]
    assert metrics(run)[0]["train_loss"] > 0.5 and 0 <= metrics(run)[-1]["val_accuracy"] <= 1
    outputs = [output for _, output in results]
    assert sum(output.count("run folder: ") for output in outputs) == 1  # worker 0 alone reports and writes
    assert "2 ranks, parameters equal on all: true" in outputs[0]
    assert sorted(path.name for path in run.iterdir()) == [
        ".lock",
        "best.weights.h5",
        "curves.png",
        "last.weights.h5",
        "metrics.csv",
        "run.json",
    ]


@pytest.mark.slow
def test_two_workers_train_as_one_process_given_the_global_batch(module_tmp, tmp_path):
    """Two workers with batches of 8 and one process with batches of 16 train on the same global batches
    (each worker takes every other image of the shuffled order): without dropout, whose masks are drawn
    per process, the runs differ only in the order of float sums, and end within one validation image."""
    data = make_image_set(module_tmp.mktemp("agree"), size=64, seed=3)  # 200 + 60 images per class
    spec = tmp_path / "small64_no_dropout.yaml"
    spec.write_text(SMALL.read_text().replace("name: small64", "name: small64_no_dropout").replace("0.25", "0.0"))
    more = ("--lr", 0.0005, "--workers", 1)
    results = train_in_workers(finetune_args(spec, data, tmp_path / "two", 3, 8, *more), tmp_path / "out")
    assert [status for status, _ in results] == [0, 0], "\n".join(output[-3000:] for _, output in results)
    one = run_vggspec("finetune", *finetune_args(spec, data, tmp_path / "one", 3, 16, *more), env=WORKER_ENV)
    assert one.returncode == 0, one.stderr[-3000:]
    two_rows, one_rows = metrics(tmp_path / "two"), metrics(tmp_path / "one")
    print("two workers:", two_rows, "\none process:", one_rows)
    assert two_rows[0]["train_loss"] == pytest.approx(one_rows[0]["train_loss"], abs=1e-3)
    for two, single in zip(two_rows, one_rows):
        assert abs(two["val_accuracy"] - single["val_accuracy"]) * 120 <= 1 + 1e-9
        assert two["val_loss"] == pytest.approx(single["val_loss"], abs=0.03)
    assert json.loads((tmp_path / "two" / "run.json").read_text())["ranks_agree"] is True


@pytest.fixture(scope="module")
def larger_set(module_tmp) -> Path:
    """120 training and 10 validation images per class: epochs long enough to kill a worker in one."""
    return make_image_set(module_tmp.mktemp("kill"), size=64, train_per_class=120, val_per_class=10, seed=4)


@pytest.mark.slow
@pytest.mark.parametrize("killed", [1, 0])
def test_a_worker_killed_mid_epoch_stops_the_other_with_one_line(larger_set, tmp_path, killed):
    """Worker ``killed`` (0 holds TensorFlow's coordination service) is killed during epoch 1; the other
    stops within 60 s with one line, and no process is left (side_by_side kills what remains)."""
    args = finetune_args(SMALL, larger_set, tmp_path / "run", 3, 4, "--workers", 1)
    other = 1 - killed
    with side_by_side(worker_runs(args), tmp_path) as started:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        out = started[0][1]
        while not re.search(r"epoch 1/3: +\d+%\|[^|]*\| [1-9]\d*/", Path(out.name).read_text()):
            assert time.monotonic() < deadline, Path(out.name).read_text()[-3000:]
            assert all(process.poll() is None for process, _ in started), Path(out.name).read_text()[-3000:]
            time.sleep(0.1)
        os.killpg(started[killed][0].pid, signal.SIGKILL)
        stopped = time.monotonic()
        status, output = wait_side_by_side([started[other]], 60)[0]
        seconds = time.monotonic() - stopped
    print(f"worker {other} stopped {seconds:.1f} s after worker {killed} was killed:\n{output[-1500:]}")
    assert status == 2, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output[-3000:]
    assert f"expected all 2 processes of the run to go on, received an error in process {other}" in errors[0]


@pytest.mark.slow
def test_ten_two_worker_runs_end_without_a_hang_or_a_leftover_process(small_set, tmp_path):
    hangs, failures, seconds = [], [], []
    for index in range(REPEATS):
        run = tmp_path / f"run{index}"
        started = time.monotonic()
        results = train_in_workers(finetune_args(SMALL, small_set, run, 1, 8, "--workers", 0), tmp_path / f"out{index}")
        seconds.append(time.monotonic() - started)
        statuses = [status for status, _ in results]
        if -1 in statuses:
            hangs.append(f"run {index}: statuses {statuses}")
        elif statuses != [0, 0] or json.loads((run / "run.json").read_text())["ranks_agree"] is not True:
            failures.append(f"run {index}: statuses {statuses}\n" + "\n".join(out[-2000:] for _, out in results))
    spread = f"{min(seconds):.1f}-{max(seconds):.1f} s"
    print(f"{REPEATS} two-worker runs: {len(hangs)} hangs, {len(failures)} failures, each {spread}")
    assert (hangs, failures) == ([], [])


@pytest.mark.slow
def test_two_workers_resume_a_run_where_it_stopped(small_set, tmp_path):
    run = tmp_path / "run"
    first = train_in_workers(finetune_args(SMALL, small_set, run, 1, 8, "--workers", 0), tmp_path / "first")
    assert [status for status, _ in first] == [0, 0], "\n".join(output[-3000:] for _, output in first)
    last = run / "last.weights.h5"
    written = last.stat().st_mtime_ns
    results = train_in_workers(
        [SMALL, "--data", small_set, "--out", run, "--resume", "--epochs", 2], tmp_path / "second"
    )
    assert [status for status, _ in results] == [0, 0], "\n".join(output[-3000:] for _, output in results)
    assert sum(output.count(f"resuming {run} after epoch 1 of 2") for _, output in results) == 1
    record = json.loads((run / "run.json").read_text())
    assert (record["epochs_done"], record["world_size"], record["ranks_agree"]) == (2, 2, True)
    assert [row["epoch"] for row in metrics(run)] == [1, 2] and last.stat().st_mtime_ns > written
