"""SIGTERM (what ``kill``, schedulers and containers send) at any moment of a command that writes: the command
stops with exit status 143 and removes its temporary files, and running it again (or resuming) succeeds and
leaves no ``.part`` file either. A process killed outright (SIGKILL) cannot clean up: its leftovers are removed
by the next write of the same destination. Real commands, real files."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec.parity.inputs import random_bundle
from vggspec.weights.formats import write_bundle

from cli_cases import ONE_THREAD, tiny_spec
from conftest import run_vggspec, started_in_own_session

pytest.importorskip("torch")

TERMINATED = 128 + signal.SIGTERM
# killed before vggspec's command line set its handler (Python still starting): nothing was written yet
KILLED_STARTING = -signal.SIGTERM


def part_files(folder: Path) -> list[str]:
    """Temporary files of vggspec's atomic writes anywhere under ``folder``."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if ".part" in path.name)


def kaggle_zip(path: Path, images: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(images):
            buffer = io.BytesIO()
            pixels = np.random.default_rng(n).integers(0, 256, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, "JPEG")
            archive.writestr(f"train/{('cat', 'dog')[n % 2]}.{n}.jpg", buffer.getvalue())
    return path


class Commands:
    """The three commands that write, each with the command that takes over after it is stopped."""

    def __init__(self, folder: Path, data: Path):
        self.folder = folder
        self.spec = tiny_spec(folder)
        plan = vggspec.plan(str(self.spec))
        self.weights = folder / "tiny.h5"
        write_bundle(self.weights, random_bundle(plan, seed=1), plan)
        self.zip = kaggle_zip(folder / "train.zip", 120)
        self.data = data

    def first(self, kind: str, round_: int) -> tuple[list[str], Path]:
        """(the command's arguments, the folder its output goes to)"""
        out = self.folder / f"{kind}{round_}"
        if kind == "convert":
            return ["convert", str(self.weights), str(out / "tiny.pt"), "--spec", str(self.spec)], out
        if kind == "data":
            return ["data", "cats-vs-dogs", "--source", str(self.zip), "--dest", str(out / "split")], out
        args = ["finetune", str(self.spec), "--data", str(self.data), "--backend", "torch", "--epochs", "3"]
        return [*args, "--workers", "0", "--out", str(out / "run")], out

    def again(self, kind: str, args: list[str], out: Path) -> list[str]:
        """What a user runs after the interruption: the same command, or the run resumed."""
        if kind == "finetune" and (out / "run" / "run.json").is_file():
            return [*args, "--resume"]
        return args


def interrupt_and_rerun(commands: Commands, kind: str, round_: int, delay: float) -> None:
    args, out = commands.first(kind, round_)
    with started_in_own_session(
        [sys.executable, "-m", "vggspec", *args],
        env={**os.environ, **ONE_THREAD},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        time.sleep(delay)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode in (0, TERMINATED, KILLED_STARTING), (kind, delay, process.returncode, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-2000:]
    if process.returncode == TERMINATED:
        assert stderr.rstrip().endswith("terminated"), stderr[-500:]
    left = part_files(out) if out.exists() else []
    assert left == [], (kind, delay, left)
    done = run_vggspec(*commands.again(kind, args, out), env=ONE_THREAD)
    assert done.returncode == 0, (kind, delay, done.stderr[-2000:])
    assert part_files(out) == [], kind


@pytest.fixture(scope="module")
def commands(module_tmp, tiny_image_set) -> Commands:
    return Commands(module_tmp.mktemp("signals"), tiny_image_set)


@pytest.mark.parametrize("kind, delay", [("convert", 2.0), ("data", 2.5), ("finetune", 5.0)])
def test_sigterm_removes_the_temporary_files_and_the_command_can_be_run_again(commands, kind, delay):
    interrupt_and_rerun(commands, kind, 0, delay)


@pytest.mark.slow
def test_sigterm_at_twenty_random_moments(commands):
    moments = random.Random(20)
    for round_ in range(1, 21):
        kind = ("convert", "data", "finetune")[round_ % 3]
        interrupt_and_rerun(commands, kind, round_, moments.uniform(0.5, 8.0))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    from vggspec.fileio import atomic_path

    destination = tmp_path / "w.safetensors"
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = int(child.stdout)  # a process that has ended
    host = os.uname().nodename
    leftover = tmp_path / f".w.safetensors.{dead}@{host}.abc123.part"
    alive = tmp_path / f".w.safetensors.{os.getpid()}@{host}.def456.part"  # a writer at work
    other = tmp_path / f".other.{dead}@{host}.abc123.part"  # another destination's
    for path in (leftover, alive, other):
        path.write_bytes(b"half")
    with atomic_path(destination) as temporary:
        temporary.write_bytes(b"whole")
    assert destination.read_bytes() == b"whole"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([destination.name, alive.name, other.name])


def test_sigterm_that_lands_in_an_extensions_import_is_still_a_termination(monkeypatch, capsys):
    """The interrupt raised inside a C extension's module init comes back as an ImportError (pybind11), and the
    next import of that module as another one (CI saw optree's "type PyTreeSpec is already registered" after a
    SIGTERM at 2.4 s of a finetune): exit 143 and "terminated", not a traceback and exit 1. Any other error
    without a SIGTERM is still raised."""
    from vggspec import cli

    def import_hit_by_sigterm(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises Terminated at the next bytecode
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # as an extension's import machinery swallows it
        raise ImportError('generic_type: type "PyTreeSpec" is already registered!')

    monkeypatch.setattr(cli, "_run", import_hit_by_sigterm)
    assert cli.main(["summary", "vgg16"]) == TERMINATED
    assert capsys.readouterr().err == "terminated\n"
    monkeypatch.setattr(cli, "_run", lambda args: int("not a number"))
    with pytest.raises(ValueError):
        cli.main(["summary", "vgg16"])
