"""A run folder is owned by one run at a time; what a run needs is checked before it writes anything; a damaged
last checkpoint is one line; a Ctrl-C is announced once, however many data-loading workers there are. Real
runs of a tiny spec through the real command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_cases import ONE_THREAD, one_line, tiny_spec
from conftest import run_vggspec, started_in_own_session

pytest.importorskip("torch")


def finetune_args(spec: Path, data: Path, out: Path, *more: object) -> list[str]:
    return ["finetune", str(spec), "--data", str(data), "--backend", "torch", "--out", str(out), *map(str, more)]


def wait_for(condition, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.stderr.read() if process.stderr else process.returncode
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_running_runs_folder_is_refused_to_a_second_run_new_or_resumed(tiny_image_set, tmp_path):
    run = tmp_path / "run"
    spec = tiny_spec(tmp_path)
    first = [
        sys.executable,
        "-m",
        "vggspec",
        *finetune_args(spec, tiny_image_set, run, "--epochs", 200, "--workers", 0),
    ]
    with started_in_own_session(
        first, env={**os.environ, **ONE_THREAD}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        wait_for(lambda: (run / "run.json").is_file(), process)
        holder = f"run {process.pid} on {os.uname().nodename} is using"
        for more in (("--epochs", 3), ("--epochs", 300, "--resume")):
            line = one_line(run_vggspec(*finetune_args(spec, tiny_image_set, run, *more), env=ONE_THREAD))
            assert line == (
                f"error: --out {run}: expected a run folder no other run is using, received one that {holder} "
                "(let it finish, or choose another folder)"
            )
        process.send_signal(signal.SIGKILL)  # the kernel drops a killed run's lock: no stale lock
        process.wait(timeout=60)
    finished = json.loads((run / "run.json").read_text())["epochs_done"]
    more = finetune_args(spec, tiny_image_set, run, "--epochs", finished + 1, "--resume")
    done = run_vggspec(*more, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "run.json").read_text())["epochs_done"] == finished + 1


def test_a_failed_start_leaves_no_folder_and_a_bad_cache_folder_is_found_first(tiny_image_set, tmp_path):
    spec = tiny_spec(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    run = tmp_path / "run"
    args = finetune_args(spec, tiny_image_set, run, "--freeze", "block1_pool", "--augment", "none")
    line = one_line(run_vggspec(*args, "--cache-features", "--cache-dir", a_file / "features", env=ONE_THREAD))
    assert line == (
        f"error: --cache-dir {a_file / 'features'}: expected a writable destination, received a path under the "
        f"file {a_file}"
    )
    assert not run.exists()  # was: a run.json a rerun could neither start over nor resume
    line = one_line(run_vggspec(*args, "--weights", tmp_path / "missing.h5", env=ONE_THREAD))
    assert "missing.h5: expected a weight file, received a path that does not exist" in line
    assert not run.exists()  # the folder made for the run is gone with it, lock and all


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a checkpoint", "unsafe pickle"])
def test_a_damaged_last_checkpoint_is_one_line_naming_it(damage, tiny_image_set, tmp_path):
    import torch

    run = tmp_path / "run"
    spec = tiny_spec(tmp_path)
    done = run_vggspec(*finetune_args(spec, tiny_image_set, run, "--epochs", 1, "--workers", 0), env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    last = run / "last.pt"
    if damage == "empty":
        last.write_bytes(b"")
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "not a checkpoint":
        torch.save({"weight": torch.zeros(3)}, last)
    else:
        torch.save({"model": torch.nn.Linear(2, 2)}, last)  # a module: a pickle of code, not data
    line = one_line(run_vggspec(*finetune_args(spec, tiny_image_set, run, "--epochs", 2, "--resume"), env=ONE_THREAD))
    assert line.startswith(
        f"error: {last}: expected the checkpoint of the run's last finished epoch (written by vggspec "
        "finetune), received a file that cannot be read ("
    ), line
    assert line.endswith("the run cannot resume from it: start a new run from best.pt with it as the weights")
    assert "\x1b" not in line


def test_ctrl_c_is_announced_once_whatever_the_workers(tiny_image_set, tmp_path):
    run = tmp_path / "run"
    spec = tiny_spec(tmp_path)
    command = [sys.executable, "-m", "vggspec", *finetune_args(spec, tiny_image_set, run, "--epochs", 50)]
    with started_in_own_session(
        [*command, "--workers", 3, "--batch-size", 2],
        env={**os.environ, **ONE_THREAD},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        wait_for(lambda: (run / "metrics.csv").is_file(), process)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole group, the workers too
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert stderr.count("interrupt: stopping after this batch") == 1, stderr[-2000:]
