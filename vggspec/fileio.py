"""Write files and folders so that a failure never leaves half of one behind.

:func:`atomic_path` writes a file beside its destination and renames it over it; :func:`atomic_folder`
does the same for a folder, either private to one process (removed when the writing fails) or
resumable (kept, for the next run to continue). A destination is thus absent or complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from vggspec.errors import VggspecError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(destination: Union[str, Path], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it over ``destination`` on success.

    On any exception (Ctrl-C and a SIGTERM the command line turns into one included) the temporary file is
    removed and an existing ``destination`` is left untouched. A process killed outright (SIGKILL, a power
    cut) cannot remove it: the temporary name carries the writer's pid and host, and the next write of the
    same destination removes those whose process has ended. ``suffix`` keeps a file extension on the
    temporary name for writers that look at it (e.g. Keras' ``.weights.h5``).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers_files(destination)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.{os.getpid()}@{socket.gethostname()}.",
        suffix=".part" + suffix,
        dir=destination.parent,
    )
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(temporary_path, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary_path.unlink()
        raise


def _remove_dead_writers_files(destination: Path) -> None:
    """Remove the temporary files of ``destination`` that processes of this host left when they were killed."""
    prefix, host = f".{destination.name}.", socket.gethostname()
    with contextlib.suppress(OSError):
        for entry in destination.parent.iterdir():
            pid, at, rest = entry.name[len(prefix) :].partition("@")
            if (
                entry.name.startswith(prefix)
                and at
                and pid.isdigit()
                and rest.startswith(f"{host}.")
                and ".part" in rest
                and not _process_alive(int(pid))
            ):
                entry.unlink(missing_ok=True)


class DestinationTaken(FileExistsError):
    """:func:`atomic_folder`'s destination was filled (by another process) while its partial folder was written."""


@contextlib.contextmanager
def atomic_folder(
    destination: Union[str, Path], *, resume: Optional[Callable[[Path], bool]] = None, sync: bool = False
) -> Iterator[Path]:
    """Yield a partial folder beside ``destination``; rename it to ``destination`` when the block succeeds.

    ``destination`` must then be absent or an empty folder (which the rename replaces); one holding files
    raises :class:`DestinationTaken` and the partial folder is treated as on any failure. Two kinds:

    - ``resume=None``, private: ``.<name>.partial-<host>-<pid>``, new and empty. Partial folders of
      ``destination`` left by processes of this host that have ended (a killed run) are removed first; on
      any failure (an exception, Ctrl-C) the folder is removed. Several processes may write one
      destination at once; the first to finish has it.
    - ``resume`` given, resumable: ``.<name>.partial``, one process at a time. A folder left there by an
      earlier run is kept when ``resume(folder)`` says it can be continued, else emptied first; temporary
      files of :func:`atomic_path` in it (a run killed while writing one) are removed, so that a file there
      is whole. On failure the folder is kept for the next run (removed when empty: nothing to continue).

    ``sync``: flush every file of the folder to disk before the rename, and the parent folder after it, so
    that not even a power cut leaves a complete-looking ``destination`` with missing data.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = _resumed_partial(destination, resume) if resume is not None else _private_partial(destination)
    try:
        yield partial
        if sync:
            for path in sorted(partial.rglob("*")):
                if path.is_file():
                    _fsync(path)
        _rename_folder(partial, destination)
        if sync:
            _fsync(destination.parent)
    except BaseException:
        if resume is None:
            shutil.rmtree(partial, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                partial.rmdir()  # only when empty
        raise


def _resumed_partial(destination: Path, resume: Callable[[Path], bool]) -> Path:
    partial = destination.parent / f".{destination.name}.partial"
    if partial.is_dir() and not resume(partial):
        shutil.rmtree(partial)  # not to be continued: made for other content, or stopped before it said which
    partial.mkdir(exist_ok=True)
    for temporary in partial.rglob(".*.part*"):
        if temporary.is_file():
            temporary.unlink()
    return partial


def _private_partial(destination: Path) -> Path:
    prefix = f".{destination.name}.partial-"
    host = socket.gethostname()
    for entry in destination.parent.iterdir():
        owner, _, pid = entry.name[len(prefix) :].rpartition("-")
        if entry.name.startswith(prefix) and owner == host and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    partial = destination.parent / f"{prefix}{host}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)  # this pid's, from a process long gone
    partial.mkdir()
    return partial


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _rename_folder(partial: Path, destination: Path) -> None:
    """Rename ``partial`` to ``destination``, replacing an empty folder; DestinationTaken when it holds files."""
    try:
        if destination.is_dir() and not any(destination.iterdir()):
            destination.rmdir()  # not every system renames over an empty folder
        os.rename(partial, destination)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY) or destination.is_file():
            raise DestinationTaken(error.errno, error.strerror, str(destination)) from None
        raise


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def destination_problem(destination: Union[str, Path], folder: bool = False, beside: bool = False) -> Optional[str]:
    """Why ``destination`` (a file, or a ``folder``) cannot be written, in the words of a message's "received
    ...", or None when it can: checked before any work that would end in writing it, creating nothing that stays.

    The folders it needs may be missing (writers make them); the nearest one that exists must be a folder in
    which a file can be made (tried with a temporary file, removed at once: permissions, a read-only file
    system or ``/proc`` all say no). For a file, and for a folder made ``beside`` its place and renamed into
    it (:func:`atomic_folder`), that is the nearest folder above; for a folder written in place, the folder
    itself when it exists. A file's destination must not be a folder; a folder's not a file.
    """
    path = Path(destination)
    if path.is_dir() and not folder:
        return "an existing folder"
    if path.exists() and not path.is_dir() and folder:
        return "a file"
    in_place = folder and not beside
    places = (path.absolute(), *path.absolute().parents) if in_place else path.absolute().parents
    nearest = next((place for place in places if place.exists()), None)
    if nearest is None:
        return "a path with no existing folder above it"
    if not nearest.is_dir():
        return f"a path under the file {nearest}"
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as error:
        what = "folder cannot be made" if folder else "file cannot be written"
        return f"one where the {what} ({error.strerror or error})"
    return None


def check_destination(
    destination: Union[str, Path],
    setting: str,
    folder: bool = False,
    error: type[VggspecError] = VggspecError,
    beside: bool = False,
) -> None:
    """``error`` (naming ``setting``, e.g. ``out``) when ``destination`` cannot be written
    (:func:`destination_problem`): ``out x.npz: expected a writable destination, received a path under the
    file ...``. Called before the work whose result it would hold."""
    problem = destination_problem(destination, folder, beside)
    if problem is None:
        return
    if problem == "an existing folder":
        raise error(f"{setting} {destination}: expected a file to write, received an existing folder", setting=setting)
    if problem == "a file":
        raise error(f"{setting} {destination}: expected a folder, received a file", setting=setting)
    raise error(f"{setting} {destination}: expected a writable destination, received {problem}", setting=setting)


def file_digest(path: Union[str, Path], algorithm: str, chunk_bytes: int = 1 << 22) -> str:
    """The ``hashlib`` digest (``"md5"``, ``"sha256"``) of a file's bytes as lowercase hex, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()
