"""Shared test helpers: run the command line in a fresh process, quiet TensorFlow.

A command run with :func:`run_in_own_session` (``cli`` and ``run_vggspec`` included)
starts in a session of its own, and its environment carries a tag (``VGGSPEC_TEST_RUN``)
that every process it starts inherits, so that nothing it started outlives the test: on a
timeout its process group is killed, and so is every process that carries the tag
(torchrun starts each rank in a session of its own, outside the group).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Sequence, Union

import pytest

import vggspec_keras  # noqa: F401  (gives TensorFlow vggspec's settings before a test imports Keras)

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
# The shipped specs every backend and the generated sources are held to: torchvision's eight, then Table 1
SHIPPED_SPECS = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
SHIPPED_SPECS += ["A", "A-LRN", "B", "C", "D", "E"]
# A small network with every kind of layer a head can have: 32x32 input, widths 8 and 16.
SMALL_SPEC = {
    "name": "small",
    "layers": ["conv3-8", "maxpool", "conv3-16", "maxpool"],
    "input_shape": [32, 32, 3],
    "fc": [32, 24],
    "dropout": 0.5,
    "classes": 10,
}
RUN_TAG = "VGGSPEC_TEST_RUN"
LEFTOVER_GRACE_S = 10.0  # a process of the run may take this long to exit after the run's leader


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str
    session: int = 0  # the leader's pid: its session and process group id
    tag: str = ""  # RUN_TAG's value in the environment of every process of the run
    seconds: float = 0.0  # wall time from start to exit


class RunError(AssertionError):
    """A run that did not end cleanly; ``tag``, ``session`` and ``killed`` (pids) say what was cleaned up."""

    def __init__(self, message: str, tag: str, session: int, killed: list[int], stdout: str):
        super().__init__(message)
        self.tag, self.session, self.killed, self.stdout = tag, session, killed, stdout


class ProcessTimedOut(RunError):
    """The command ran past its timeout; every process of its run was killed."""


class ProcessesLeftOver(RunError):
    """The command exited but left processes running (killed when found)."""


def run_processes(tag: str, session: int) -> list[int]:
    """Live processes of a run (zombies left out), from /proc: those in its session (process
    group ``session`` included) and those whose environment holds ``RUN_TAG=tag``."""
    marker = f"\0{RUN_TAG}={tag}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses
                state, _, group, sid = file.read().rsplit(b")", 1)[1].split()[:4]
            if state in (b"Z", b"X"):
                continue
            if session > 0 and session in (int(group), int(sid)):
                found.append(int(entry.name))
                continue
            with open(f"/proc/{entry.name}/environ", "rb") as file:
                if marker in b"\0" + file.read():
                    found.append(int(entry.name))
        except (OSError, ValueError):  # gone, or another user's
            continue
    return found


def _describe(pids: Sequence[int]) -> str:
    lines = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                words = file.read().split(b"\0")
            lines.append(f"  {pid}: {b' '.join(words).decode(errors='replace')[:200]}")
        except OSError:
            lines.append(f"  {pid}: (gone)")
    return "\n".join(lines)


def _kill_run(tag: str, session: int) -> list[int]:
    """SIGKILL the process group ``session``, then every process of the run, until none is left
    (a forking process may add one meanwhile); returns the pids found and killed."""
    killed: list[int] = []
    try:
        os.killpg(session, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while (pids := run_processes(tag, session)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return sorted(set(killed))


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


def run_temp_folder() -> tempfile.TemporaryDirectory[str]:
    """The temporary folder (``TMPDIR``) of one run, removed when the run ends: what its processes leave
    there (torchrun's ``torchelastic_*`` folders, a killed writer's staging files) goes with it.
    It lies in the usual temporary folder (the caller's ``TMPDIR``, if set)."""
    return tempfile.TemporaryDirectory(prefix="vggspec-test-run-", ignore_cleanup_errors=True)


def run_in_own_session(
    command: Sequence[Union[str, Path]],
    timeout: float,
    env: Optional[dict] = None,
    cwd: Optional[Path] = None,
    *,
    grace: float = LEFTOVER_GRACE_S,
) -> Completed:
    """Run ``command`` in a new session with its output captured; nothing it starts may outlive it.

    ``env`` is the whole environment (``os.environ`` when None). The output goes to files,
    not pipes, so that a process left holding them cannot stall the reader. On a timeout the
    process group and every process of the run are killed with SIGKILL, the leader is
    reaped, and :class:`ProcessTimedOut` is raised with the output so far. Processes of the
    run still alive ``grace`` seconds after the leader exited are killed and reported with
    :class:`ProcessesLeftOver`.
    """
    tag = uuid.uuid4().hex
    shown = " ".join(map(str, command))[:300]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, run_temp_folder() as temp:
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(part) for part in command],
            stdout=out,
            stderr=err,
            cwd=cwd,
            env={**(os.environ if env is None else env), "TMPDIR": temp, RUN_TAG: tag},
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = _kill_run(tag, proc.pid)
            proc.wait()
            stdout, stderr = _read(out), _read(err)
            raise ProcessTimedOut(
                f"{shown}: still running after {timeout:g} s; killed its process group {proc.pid} and processes "
                f"{killed}\n--- stdout (end) ---\n{stdout[-3000:]}\n--- stderr (end) ---\n{stderr[-3000:]}",
                tag,
                proc.pid,
                killed,
                stdout,
            ) from None
        seconds = time.monotonic() - started
        deadline = time.monotonic() + grace
        while run_processes(tag, proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = run_processes(tag, proc.pid)
        description = _describe(left)
        killed = _kill_run(tag, proc.pid) if left else []
        stdout, stderr = _read(out), _read(err)
    if left:
        raise ProcessesLeftOver(
            f"{shown}: exited with status {proc.returncode} after {seconds:.1f} s but left processes running "
            f"{grace:g} s later (killed: {killed}):\n{description}\n--- stderr (end) ---\n{stderr[-3000:]}",
            tag,
            proc.pid,
            killed,
            stdout,
        )
    return Completed(proc.returncode, stdout, stderr, session=proc.pid, tag=tag, seconds=seconds)


@contextlib.contextmanager
def started_in_own_session(
    command: Sequence[Union[str, Path]], env: Optional[dict] = None, **popen: Any
) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen(command)`` in a new session with a run tag, for a test that signals it while it
    runs (an interrupt, a kill); when the block ends, however it ends, the process group and every
    process of the run are killed and the leader reaped."""
    tag = uuid.uuid4().hex
    with run_temp_folder() as temp:
        process = subprocess.Popen(
            [str(part) for part in command],
            env={**(os.environ if env is None else env), "TMPDIR": temp, RUN_TAG: tag},
            start_new_session=True,
            **popen,
        )
        try:
            yield process
        finally:
            _kill_run(tag, process.pid)
            process.wait()


def slow_for(values: Sequence[Any], *slow: Any) -> list[Any]:
    """``values`` as the parameters of a test, those among ``slow`` marked for the slow suite."""
    return [pytest.param(value, marks=pytest.mark.slow) if value in slow else value for value in values]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (another process may take it before it is used)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def side_by_side(
    runs: Sequence[tuple[Sequence[Union[str, Path]], dict]], folder: Path
) -> Iterator[list[tuple[subprocess.Popen, IO[str]]]]:
    """Start every (command, environment) of ``runs`` at once, as the machines of a cluster would, each in
    its own session with its output (stdout and stderr together) in ``folder``/process<i>.out; yields
    (process, output file) of each. When the block ends, however it ends, every process of every run is
    killed (see :func:`started_in_own_session`)."""
    with contextlib.ExitStack() as stack:
        started = []
        for index, (command, env) in enumerate(runs):
            out = stack.enter_context(open(folder / f"process{index}.out", "w+"))
            started.append((stack.enter_context(started_in_own_session(command, env, stdout=out, stderr=out)), out))
        yield started


def wait_side_by_side(started: list[tuple[subprocess.Popen, IO[str]]], timeout: float) -> list[tuple[int, str]]:
    """(exit status, output) of each process of :func:`side_by_side`, waiting ``timeout`` seconds for all
    of them together; -1 for one still running then (killed when the block ends)."""
    deadline = time.monotonic() + timeout
    results = []
    for process, out in started:
        try:
            status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = -1
        out.seek(0)
        results.append((status, out.read()))
    return results


def run_vggspec(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600) -> Completed:
    """Run ``python -m vggspec ARGS`` in a fresh process (its own session) and capture its output."""
    return run_in_own_session(
        [sys.executable, "-m", "vggspec", *map(str, args)], timeout, env={**os.environ, **(env or {})}, cwd=cwd
    )


@pytest.fixture
def cli():
    """``cli("summary", "vgg16")`` -> Completed(returncode, stdout, stderr)."""
    return run_vggspec


class ModuleFolders:
    """``mktemp(name)`` as ``tmp_path_factory`` gives it, for a module-scoped fixture; the folders go when
    the module's tests are done, unless one of them failed (then they stay, for a look)."""

    def __init__(self, factory: pytest.TempPathFactory):
        self.factory = factory
        self.made: list[Path] = []

    def mktemp(self, name: str) -> Path:
        folder = self.factory.mktemp(name)
        self.made.append(folder)
        return folder


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ModuleFolders]:
    """Temporary folders that last one test module: full-size weight files (0.5 GB each) and trained runs
    would otherwise pile up until the session ends (the slow suite once filled a disk with 22 GB)."""
    failed_before = request.session.testsfailed
    folders = ModuleFolders(tmp_path_factory)
    yield folders
    if request.session.testsfailed == failed_before:
        for folder in folders.made:
            shutil.rmtree(folder, ignore_errors=True)


SLOW_SUITE_DISK_GB = 5.6  # the slow suite's peak in the temporary folder (README, Development)


def pytest_report_header(config: pytest.Config) -> str:
    """The temporary folder and its free space: the slow tests write full-size weight files."""
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free / 1e9
    return f"temporary folder: {folder}, {free:.1f} GB free (the slow tests need about {SLOW_SUITE_DISK_GB:g} GB)"


# The test files that take longest (a fixture of several minutes, or one test of many runs), started first: with
# two processes (make test), each takes a file whole, and a long file started last would run alone at the end.
LONG_FILES_FIRST = (
    "test_codegen.py",
    "test_ddp.py",
    "test_packaging.py",
    "test_onnx_backend.py",
    "test_fuzz_weights.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of LONG_FILES_FIRST first, in that order; the others after them as collected."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_FILES_FIRST.index(name) if name in LONG_FILES_FIRST else len(LONG_FILES_FIRST)

    items.sort(key=rank)  # a stable sort: the order within each file stays


@pytest.fixture(scope="module")
def tiny_image_set(module_tmp) -> Path:
    """8 training and 2 validation RGB JPEGs per class (circles, stripes), 32×32: for runs of a tiny spec."""
    from image_sets import make_image_set

    return make_image_set(module_tmp.mktemp("rgb"), size=32, train_per_class=8, val_per_class=2, seed=4)
