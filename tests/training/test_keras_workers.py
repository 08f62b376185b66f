"""Keras fine-tuning in two processes, as two machines run it: `vggspec finetune --backend keras` in two
workers on 127.0.0.1 that TF_CONFIG joins on TensorFlow (MultiWorkerMirroredStrategy), and that Keras'
KERAS_DISTRIBUTION_* variables join on JAX (keras.distribution.DataParallel over jax.distributed).

Each worker trains its shard of every global batch; the gradients are averaged, so both end with the
same parameters (``ranks_agree``), and the run matches one process given the whole global batch.
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

from vggspec.training.distributed import KERAS_DISTRIBUTION, TF_CONFIG, launch_environment

from conftest import SPECS, free_port, run_in_own_session, run_vggspec, side_by_side, wait_side_by_side
from image_sets import make_image_set

SMALL = SPECS / "examples" / "small64.yaml"
RUN_TIMEOUT_S = 120  # a two-worker run here takes about 15 s
REPEATS = 10
FRAMEWORKS = ("tensorflow", "jax")


def one_process_env(framework: str) -> dict[str, str]:
    return {"KERAS_BACKEND": framework, "OMP_NUM_THREADS": "1"}


def worker_runs(args: list, framework: str, workers: int = 2) -> list[tuple[list, dict]]:
    """(command, environment) of each worker of one `vggspec finetune ARGS` run."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(workers)]
    command = [sys.executable, "-m", "vggspec", "finetune", *map(str, args)]
    base = {**os.environ, **one_process_env(framework)}
    source = TF_CONFIG if framework == "tensorflow" else KERAS_DISTRIBUTION
    return [(command, {**base, **launch_environment(source, addresses, index)}) for index in range(workers)]


def finetune_args(spec: Path, data: Path, run: Path, epochs: int, batch: int, *more: object) -> list:
    return [spec, "--data", data, "--backend", "keras", "--epochs", epochs, "--batch-size", batch, "--out", run, *more]


def train_in_workers(
    args: list, folder: Path, framework: str = "tensorflow", timeout: float = RUN_TIMEOUT_S
) -> list[tuple[int, str]]:
    """(exit status, output) of each worker; -1 for one that outlived ``timeout`` (then killed)."""
    folder.mkdir(parents=True, exist_ok=True)
    with side_by_side(worker_runs(args, framework), folder) as started:
        return wait_side_by_side(started, timeout)


def metrics(run: Path) -> list[dict[str, float]]:
    with open(run / "metrics.csv", newline="") as file:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def small_set(module_tmp) -> Path:
    """40 training and 10 validation images per class, 64x64."""
    return make_image_set(module_tmp.mktemp("workers"), size=64, train_per_class=40, val_per_class=10, seed=2)


@pytest.mark.slow  # 13 s; tests/training/test_launchers.py keeps the launchers' fast checks
def test_two_workers_train_the_small_spec_and_agree(small_set, tmp_path):
    """TensorFlow here; JAX in the slow test that compares two processes with one."""
    run = tmp_path / "run"
    args = finetune_args(SMALL, small_set, run, 2, 8, "--workers", 1)
    results = train_in_workers(args, tmp_path / "out", "tensorflow")
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
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_workers_train_as_one_process_given_the_global_batch(module_tmp, tmp_path, framework):
    """Two workers with batches of 8 and one process with batches of 16 train on the same global batches
    (each worker takes every other image of the shuffled order): without dropout, whose masks are drawn
    per process, the runs differ only in the order of float sums, and end within one validation image."""
    data = make_image_set(module_tmp.mktemp(f"agree-{framework}"), size=64, seed=3)  # 200 + 60 images per class
    spec = tmp_path / "small64_no_dropout.yaml"
    spec.write_text(SMALL.read_text().replace("name: small64", "name: small64_no_dropout").replace("0.25", "0.0"))
    more = ("--lr", 0.0005, "--workers", 1)  # batches of 16 in all: 8 per worker (--global-batch-size 16)
    two_args = [spec, "--data", data, "--backend", "keras", "--epochs", 3, "--global-batch-size", 16, *more]
    results = train_in_workers([*two_args, "--out", tmp_path / "two"], tmp_path / "out", framework)
    assert [status for status, _ in results] == [0, 0], "\n".join(output[-3000:] for _, output in results)
    one_args = finetune_args(spec, data, tmp_path / "one", 3, 16, *more)  # the same, in one process
    one = run_vggspec("finetune", *one_args, env=one_process_env(framework))
    assert one.returncode == 0, one.stderr[-3000:]
    two_rows, one_rows = metrics(tmp_path / "two"), metrics(tmp_path / "one")
    print("two workers:", two_rows, "\none process:", one_rows)
    assert two_rows[0]["train_loss"] == pytest.approx(one_rows[0]["train_loss"], abs=1e-3)
    for two, single in zip(two_rows, one_rows):
        assert abs(two["val_accuracy"] - single["val_accuracy"]) * 120 <= 1 + 1e-9
        assert two["val_loss"] == pytest.approx(single["val_loss"], abs=0.03)
    record = json.loads((tmp_path / "two" / "run.json").read_text())
    assert (record["ranks_agree"], record["config"]["batch_size"], record["world_size"]) == (True, 8, 2)


# One process that splits its CPU into two logical devices, makes MirroredStrategy over them TensorFlow's
# default (as a caller of vggspec's library may; on a machine with several GPUs vggspec does it itself)
# and runs the command line with the arguments it is given.
MIRRORED = (
    "import sys, tensorflow as tf\n"
    "cpu = tf.config.list_physical_devices('CPU')[0]\n"
    "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
    "tf.distribute.experimental_set_strategy(tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']))\n"
    "from vggspec.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.slow
def test_one_process_on_two_devices_trains_as_on_one(module_tmp, tmp_path):
    """MirroredStrategy over two devices splits each batch of 16 into two of 8: the same run as on one
    device, within one validation image (the spec without dropout, as above)."""
    data = make_image_set(module_tmp.mktemp("mirrored"), size=64, train_per_class=100, val_per_class=60, seed=3)
    spec = tmp_path / "small64_no_dropout.yaml"
    spec.write_text(SMALL.read_text().replace("name: small64", "name: small64_no_dropout").replace("0.25", "0.0"))
    more = ("--lr", 0.0005, "--workers", 1)
    runs = {}
    for name, prelude in (("two-devices", ["-c", MIRRORED]), ("one-device", ["-m", "vggspec"])):
        args = ["finetune", *finetune_args(spec, data, tmp_path / name, 2, 16, *more)]
        result = run_in_own_session(
            [sys.executable, *prelude, *args], RUN_TIMEOUT_S, env={**os.environ, **one_process_env("tensorflow")}
        )
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = metrics(tmp_path / name)
    print(runs)
    for two, one in zip(runs["two-devices"], runs["one-device"]):
        assert two["train_loss"] == pytest.approx(one["train_loss"], abs=0.01)
        assert abs(two["val_accuracy"] - one["val_accuracy"]) * 120 <= 1 + 1e-9


@pytest.fixture(scope="module")
def larger_set(module_tmp) -> Path:
    """120 training and 10 validation images per class: epochs long enough to kill a worker in one."""
    return make_image_set(module_tmp.mktemp("kill"), size=64, train_per_class=120, val_per_class=10, seed=4)


def kill_mid_epoch(data: Path, folder: Path, framework: str, killed: int) -> tuple[int, str, float]:
    """Start two workers, SIGKILL worker ``killed`` during epoch 1 and wait 60 s for the other: its (exit
    status, output, seconds it took to stop); -1 for a worker still running (then killed with the rest)."""
    args = finetune_args(SMALL, data, folder / "run", 3, 4, "--workers", 1)
    other = 1 - killed
    with side_by_side(worker_runs(args, framework), folder) as started:
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
    print(f"{framework}: worker {other} stopped {seconds:.1f} s after worker {killed} was killed:\n{output[-1500:]}")
    return status, output, seconds


@pytest.mark.slow
@pytest.mark.parametrize("killed", [1, 0])
def test_a_tensorflow_worker_killed_mid_epoch_stops_the_other_with_one_line(larger_set, tmp_path, killed):
    """Worker ``killed`` (0 holds TensorFlow's coordination service) is killed during epoch 1; the other
    stops within 60 s with one line, and no process is left (side_by_side kills what remains)."""
    other = 1 - killed
    status, output, _ = kill_mid_epoch(larger_set, tmp_path, "tensorflow", killed)
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


@pytest.mark.slow
@pytest.mark.parametrize("killed", [1, 0])
def test_a_jax_worker_killed_mid_epoch_stops_the_other(larger_set, tmp_path, killed):
    """On JAX the survivor stops within 60 s, not a hang: JAX's distributed service ends it (a fatal error of
    its own, SIGABRT) once it misses the dead worker's heartbeats, or at once when the dead one coordinated
    it (worker 0), or at the survivor's exit, after vggspec's one line when the survivor's collective failed
    first (which of these comes first varies from run to run)."""
    status, output, seconds = kill_mid_epoch(larger_set, tmp_path, "jax", killed)
    assert status not in (0, -1) and seconds < 60, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1 and all("expected all 2 processes of the run to go on" in line for line in errors)
