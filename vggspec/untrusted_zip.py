"""Zip archives from an untrusted source (weight files, data set sources), read within bounds.

A zip says how large each member is before anything is decompressed: its central directory's declared
sizes, checked here against a limit first. A member is then read at most to the smaller of its declared
size and the limit, so a header that lies cannot make it yield more. zipfile's answers to a damaged
archive become one error of the caller's kind naming it.
"""

from __future__ import annotations

import contextlib
import lzma
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

from vggspec.errors import VggspecError

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
CHUNK_BYTES = 1 << 20  # read from a member at a time


@contextlib.contextmanager
def zip_errors(name: str, what: str, error: type[VggspecError]) -> Iterator[None]:
    """Turn zipfile's errors inside the block (its calls only) into one ``error`` on ``name``."""
    try:
        yield
    except ZIP_ERRORS as caught:
        reason = " ".join(str(caught).split())[:200] or type(caught).__name__
        raise error(
            f"{name}: expected {what}, received one that cannot be read ({type(caught).__name__}: {reason})"
        ) from None


def declared_sizes(path: Path, what: str, error: type[VggspecError]) -> dict[str, int]:
    """Each member's name and declared uncompressed size (bytes), from the central directory (nothing
    decompressed)."""
    with zip_errors(str(path), what, error), zipfile.ZipFile(path) as archive:
        return {info.filename: info.file_size for info in archive.infolist()}


def check_total_size(
    path: Path, sizes: dict[str, int], limit: int, what: str, why: str, error: type[VggspecError]
) -> None:
    """``error`` when the members ``sizes`` (declared, bytes) add up to more than ``limit`` (set ``why``)."""
    total = sum(sizes.values())
    if total > limit:
        raise error(
            f"{path}: expected {what} of at most {limit:,} bytes uncompressed ({why}), received members that "
            f"declare {total:,} bytes"
        )


def member_chunks(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str, what: str, error: type[VggspecError]
) -> Iterator[bytes]:
    """The bytes of the member ``info`` (whose declared size the caller has checked against ``limit``), a
    chunk at a time; ``error`` as soon as it yields more than its declared size or ``limit``. zipfile stops at
    the declared size itself: this is the bound that does not depend on it."""
    most = min(info.file_size, limit)
    with contextlib.ExitStack() as stack:
        with zip_errors(where, what, error):
            source = stack.enter_context(archive.open(info))
        delivered = 0
        while True:
            with zip_errors(where, what, error):
                chunk = source.read(CHUNK_BYTES)
            if not chunk:
                return
            delivered += len(chunk)
            if delivered > most:
                raise error(f"{where}: expected {info.file_size:,} bytes (its declared size), received more")
            yield chunk
