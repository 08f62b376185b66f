"""Open what a user names as a file only when it is a regular file, so that no path can hang a command.

Reading a FIFO blocks until a writer comes, a character device such as ``/dev/zero`` never ends, and a
folder is not a file: every reader of user-named files (specs, images, weight files, data sources)
asks :func:`not_regular` first and opens through :func:`open_regular`, which never blocks (the file is
opened non-blocking, then checked again, in case it was swapped for a FIFO after the first look).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union

PathLike = Union[str, Path]


class NotRegularFile(OSError):
    """A path that is no regular file to read; its ``strerror`` says what it is (``a FIFO (named pipe)``)."""


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` is, in words: ``a folder``, ``a FIFO (named pipe)``, ``a regular file`` ..."""
    for test, word in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return word
    return "not a regular file"


def not_regular(path: PathLike) -> Optional[str]:
    """None for a regular file (links followed); else what ``path`` is instead, in words: ``a path that does
    not exist``, ``a folder``, ``a FIFO (named pipe)``, or the system's reason it cannot be looked at."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "a path that does not exist"
    except OSError as error:
        return f"a path that cannot be read ({error.strerror or error})"
    return None if stat.S_ISREG(status.st_mode) else file_kind(status.st_mode)


@contextlib.contextmanager
def open_regular(path: PathLike) -> Iterator[BinaryIO]:
    """``path`` opened for binary reading, never blocking; :class:`NotRegularFile` (an OSError) when it is not a
    regular file, FileNotFoundError and other OSErrors as ``open`` raises them."""
    kind = not_regular(path)
    if kind is not None and kind != "a path that does not exist" and not kind.startswith("a path that cannot"):
        raise NotRegularFile(0, kind, str(path))
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opened this way does not wait for a writer
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(0, file_kind(mode), str(path))
        os.set_blocking(handle.fileno(), True)
        yield handle
