"""Zip archives inside weight files (``.keras`` models, zip-format ``.pt`` files), read safely.

The bounds of :mod:`vggspec.untrusted_zip` as WeightsErrors, their limits set by the spec's
parameters: sizes are checked on the central directory's declared sizes before anything is
decompressed, and a member is copied out at most to its declared size, into a path of ours
(never one made from the member's name).
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

from vggspec import untrusted_zip
from vggspec.errors import WeightsError

WHY = "for the spec's parameters"


def declared_sizes(path: Path, what: str) -> dict[str, int]:
    """Each member's name and declared uncompressed size, from the central directory (nothing decompressed)."""
    return untrusted_zip.declared_sizes(path, what, WeightsError)


def check_total_size(path: Path, sizes: dict[str, int], limit: int, what: str) -> None:
    untrusted_zip.check_total_size(path, sizes, limit, what, WHY, WeightsError)


def copy_member(path: Path, member: str, destination: Path, limit: int, what: str) -> None:
    """Copy ``member`` (one the archive lists) of ``path`` to ``destination`` (a path of ours),
    refusing a member that declares, or yields, more than ``limit`` bytes."""
    where = f"{path} ({member})"
    with contextlib.ExitStack() as stack:
        with untrusted_zip.zip_errors(where, what, WeightsError):
            archive = stack.enter_context(zipfile.ZipFile(path))
            info = archive.getinfo(member)
        if info.file_size > limit:
            raise WeightsError(
                f"{where}: expected at most {limit:,} bytes ({WHY}), received a member that declares {info.file_size:,}"
            )
        target = stack.enter_context(open(destination, "wb"))
        for chunk in untrusted_zip.member_chunks(archive, info, limit, where, what, WeightsError):
            target.write(chunk)
