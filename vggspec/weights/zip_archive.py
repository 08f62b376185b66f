"""Zip archives from an untrusted source (``.keras`` models, zip-format ``.pt`` files), read safely.

Sizes are checked on the central directory's declared sizes before anything is
decompressed, and a member is copied out at most to its declared size, into a
path of ours (never one made from the member's name). zipfile's answers to a
damaged archive become one WeightsError naming it.
"""

from __future__ import annotations

import contextlib
import lzma
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

from vggspec.errors import WeightsError

# What zipfile raises for a damaged, foreign or unsupported archive (bad CRC, bad headers,
# encryption, an unknown compression method, a truncated stream).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
)
_CHUNK = 1 << 20


@contextlib.contextmanager
def zip_errors(name: str, what: str) -> Iterator[None]:
    """Turn zipfile's errors inside the block (its calls only) into one WeightsError on ``name``."""
    try:
        yield
    except ZIP_ERRORS as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise WeightsError(
            f"{name}: expected {what}, received one that cannot be read ({type(error).__name__}: {reason})"
        ) from None


def declared_sizes(path: Path, what: str) -> dict[str, int]:
    """Each member's name and declared uncompressed size, from the central directory (nothing decompressed)."""
    with zip_errors(str(path), what), zipfile.ZipFile(path) as archive:
        return {info.filename: info.file_size for info in archive.infolist()}


def check_total_size(path: Path, sizes: dict[str, int], limit: int, what: str) -> None:
    total = sum(sizes.values())
    if total > limit:
        raise WeightsError(
            f"{path}: expected {what} of at most {limit:,} bytes uncompressed (for the spec's "
            f"parameters), received members that declare {total:,} bytes"
        )


def copy_member(path: Path, member: str, destination: Path, limit: int, what: str) -> None:
    """Copy ``member`` (one the archive lists) of ``path`` to ``destination`` (a path of ours),
    refusing a member that declares, or yields, more than ``limit`` bytes."""
    where = f"{path} ({member})"
    with contextlib.ExitStack() as stack:
        with zip_errors(where, what):
            archive = stack.enter_context(zipfile.ZipFile(path))
            info = archive.getinfo(member)
        if info.file_size > limit:
            raise WeightsError(
                f"{where}: expected at most {limit:,} bytes (for the spec's parameters), "
                f"received a member that declares {info.file_size:,}"
            )
        with zip_errors(where, what):
            source = stack.enter_context(archive.open(info))
        target = stack.enter_context(open(destination, "wb"))
        copied = 0
        while True:
            with zip_errors(where, what):
                chunk = source.read(_CHUNK)
            if not chunk:
                break
            copied += len(chunk)
            if copied > min(info.file_size, limit):  # zipfile stops at the declared size; never trust that alone
                raise WeightsError(f"{where}: expected {info.file_size:,} bytes (its declared size), received more")
            target.write(chunk)
