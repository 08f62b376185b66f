"""atomic_folder: a destination folder is absent or complete; a private partial folder never outlives its
writer, a resumable one is kept for the next run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vggspec import fileio
from vggspec.fileio import DestinationTaken, atomic_folder, atomic_path


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_private_folder_becomes_the_destination_or_nothing(tmp_path):
    dest = tmp_path / "parent" / "cache"
    with atomic_folder(dest) as partial:
        assert partial.parent == dest.parent and partial.name == f".cache.partial-{socket.gethostname()}-{os.getpid()}"
        (partial / "a.txt").write_text("a")
    assert names(tmp_path / "parent") == ["cache"] and (dest / "a.txt").read_text() == "a"

    for stop in (RuntimeError("failed"), KeyboardInterrupt()):
        with pytest.raises(type(stop)), atomic_folder(tmp_path / "other") as partial:
            (partial / "half.txt").write_text("half")
            raise stop
        assert names(tmp_path) == ["parent"]


def test_a_private_folder_removes_what_ended_processes_left_and_nothing_else(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".cache.partial-{host}-{dead_pid()}"
    alive = tmp_path / f".cache.partial-{host}-{os.getppid()}"  # another run, still writing
    elsewhere = tmp_path / f".cache.partial-otherhost-{dead_pid()}"  # a process this host cannot see
    other_destination = tmp_path / f".cache2.partial-{host}-{dead_pid()}"
    for folder in (dead, alive, elsewhere, other_destination):
        folder.mkdir()
        (folder / "x.npy").write_bytes(b"half")
    with atomic_folder(tmp_path / "cache") as partial:
        assert not dead.exists() and alive.is_dir() and elsewhere.is_dir() and other_destination.is_dir()
        assert list(partial.iterdir()) == []
    assert names(tmp_path) == sorted([alive.name, elsewhere.name, other_destination.name, "cache"])


def test_an_empty_destination_is_replaced_and_a_full_one_is_taken(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_folder(empty) as partial:
        (partial / "a.txt").write_text("a")
    assert names(empty) == ["a.txt"]

    full = tmp_path / "full"
    full.mkdir()
    (full / "theirs.txt").write_text("another run's")
    with pytest.raises(DestinationTaken), atomic_folder(full) as partial:
        (partial / "mine.txt").write_text("mine")
    assert names(full) == ["theirs.txt"] and names(tmp_path) == ["empty", "full"]


def test_a_resumable_folder_is_kept_on_failure_and_continued_or_cleared(tmp_path):
    dest = tmp_path / "split"
    with pytest.raises(KeyboardInterrupt), atomic_folder(dest, resume=lambda folder: True) as partial:
        assert partial == tmp_path / ".split.partial"
        (partial / "train").mkdir()
        (partial / "train" / "1.jpg").write_bytes(b"whole")
        with atomic_path(partial / "train" / "2.jpg") as temporary:
            temporary.write_bytes(b"ha")
            (partial / "train" / ".3.jpg.x1y2.part").write_bytes(b"ha")  # what a killed process leaves
            raise KeyboardInterrupt
    assert names(partial / "train") == [".3.jpg.x1y2.part", "1.jpg"] and not dest.exists()

    seen = []
    with atomic_folder(dest, resume=lambda folder: seen.append(names(folder)) or True) as partial:
        assert seen == [["train"]] and names(partial / "train") == ["1.jpg"]  # whole files only
        (partial / "train" / "2.jpg").write_bytes(b"whole")
    assert names(dest / "train") == ["1.jpg", "2.jpg"] and names(tmp_path) == ["split"]

    (tmp_path / ".again.partial").mkdir()
    (tmp_path / ".again.partial" / "other.txt").write_text("made from other arguments")
    with atomic_folder(tmp_path / "again", resume=lambda folder: False) as partial:
        assert list(partial.iterdir()) == []
        (partial / "b.txt").write_text("b")
    assert names(tmp_path / "again") == ["b.txt"]


def test_a_resumable_folder_with_nothing_to_continue_is_removed_on_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "split", resume=lambda folder: True):
        raise RuntimeError("the source is too small")
    assert list(tmp_path.iterdir()) == []


def test_sync_flushes_every_file_before_the_rename_and_the_parent_after(tmp_path, monkeypatch):
    synced: list[tuple[str, bool]] = []
    monkeypatch.setattr(fileio, "_fsync", lambda path: synced.append((path.name, (tmp_path / "cache").exists())))
    with atomic_folder(tmp_path / "cache", sync=True) as partial:
        (partial / "sub").mkdir()
        (partial / "a.npy").write_bytes(b"a")
        (partial / "sub" / "b.npy").write_bytes(b"b")
    assert synced == [("a.npy", False), ("b.npy", False), (tmp_path.name, True)]


@pytest.mark.parametrize(
    "where, folder, beside, expected",
    [
        ("new.pt", False, False, None),
        ("existing.pt", False, False, None),  # replaced atomically
        ("deep/new/folders/x.pt", False, False, None),  # the folders are made
        ("dir", False, False, "an existing folder"),
        ("existing.pt/x.pt", False, False, "a path under the file {tmp}/existing.pt"),
        ("existing.pt/deeper/x.pt", False, False, "a path under the file {tmp}/existing.pt"),
        ("/proc/x.pt", False, False, "one where the file cannot be written (No such file or directory)"),
        ("/proc/self/x.pt", False, False, "one where the file cannot be written"),
        ("dir", True, False, None),
        ("new/run", True, False, None),
        ("existing.pt", True, False, "a file"),
        ("existing.pt/run", True, False, "a path under the file {tmp}/existing.pt"),
        ("/proc/run", True, False, "one where the folder cannot be made"),
        ("/proc/self", True, True, "one where the folder cannot be made"),  # made beside it: /proc is the parent
    ],
)
def test_a_destination_that_cannot_be_written_is_said_before_any_work(tmp_path, where, folder, beside, expected):
    """The whole class, one check: a file or folder to write, new or existing, under a file, in /proc (no file can
    be made there, as in a read-only file system; the tests run as root, whom permissions do not stop)."""
    (tmp_path / "existing.pt").write_bytes(b"old")
    (tmp_path / "dir").mkdir()
    path = Path(where) if where.startswith("/") else tmp_path / where
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    problem = fileio.destination_problem(path, folder=folder, beside=beside)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected.format(tmp=tmp_path)), problem
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing made, nothing left
