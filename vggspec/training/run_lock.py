"""Who may write a run folder: one run at a time, and a new run only an empty folder.

A run holds an exclusive ``flock`` on the folder's ``.lock`` file for as long as it runs (rank 0 of a
distributed run, the one that writes). The kernel drops the lock when the process ends, however it
ends, so a killed run leaves no stale lock; the file itself stays (removing a lock file that another
process may have opened would let two runs own one folder). It names the run holding it, for the
message the next one gets.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from typing import Iterator

from vggspec.errors import DataError
from vggspec.training.run_folder import RunFolder

LOCK_FILE = ".lock"


def check_free(run: RunFolder) -> None:
    """DataError (setting ``run_dir``) when another run holds the folder now; nothing is created."""
    try:
        descriptor = os.open(run.path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return  # no lock file: no run has held it
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(run, descriptor) from None
    finally:
        os.close(descriptor)


def check_new_run_folder(run: RunFolder) -> None:
    """A new run needs a new or empty folder (a lock file left by a failed start aside) that no run is using."""
    if run.path.exists() and not run.path.is_dir():
        raise DataError(f"run_dir {run.path}: expected a new or empty folder, received a file", setting="run_dir")
    check_free(run)
    check_empty(run)
    run.check_creatable()


def check_empty(run: RunFolder) -> None:
    if run.path.is_dir() and any(entry.name != LOCK_FILE for entry in run.path.iterdir()):
        raise DataError(
            f"run_dir {run.path}: expected a new or empty folder, received one with files "
            "(resume that run to continue it, or choose another folder)",
            setting="run_dir",
        )


def _in_use(run: RunFolder, descriptor: int) -> DataError:
    holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
    return DataError(
        f"run_dir {run.path}: expected a run folder no other run is using, received one that {holder} is "
        "using (let it finish, or choose another folder)",
        setting="run_dir",
    )


@contextlib.contextmanager
def owned(run: RunFolder) -> Iterator[None]:
    """This run's hold on the folder, for as long as the block runs: the folder made if needed, and an
    exclusive lock on its lock file. Another run holding it: DataError naming the setting ``run_dir`` and
    that run. Should the block fail before run.json exists, the folder is left as it was found."""
    created = not run.path.exists()
    run.create()
    lock = run.path / LOCK_FILE
    with run.writing():
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(run, descriptor) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"run {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        except BaseException:
            if not run.exists():  # nothing of the run was written: leave no folder, or no lock, behind
                lock.unlink(missing_ok=True)
                if created:
                    with contextlib.suppress(OSError):
                        run.path.rmdir()
            raise
    finally:
        os.close(descriptor)  # the lock goes with it
