"""Write files so that a failure never leaves half a file behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(destination: Union[str, Path], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it over ``destination`` on success.

    On any exception the temporary file is removed and an existing
    ``destination`` is left untouched. ``suffix`` keeps a file extension on the
    temporary name for writers that look at it (e.g. Keras' ``.weights.h5``).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".part" + suffix, dir=destination.parent
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


def file_digest(path: Union[str, Path], algorithm: str, chunk_bytes: int = 1 << 22) -> str:
    """The ``hashlib`` digest (``"md5"``, ``"sha256"``) of a file's bytes as lowercase hex, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()
