"""Read a spec file safely: a regular file of a sane size, UTF-8, parsed with positions.

A spec may be any path a user gives, so nothing is read that could hang or exhaust the
machine; ``MAX_SPEC_BYTES`` is 1 MiB (the shipped specs are under 3 KB).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vggspec.errors import Problem, SpecError
from vggspec.regular_files import file_kind
from vggspec.spec.yaml_source import YamlDocument, parse_yaml

MAX_SPEC_BYTES = 1 << 20


def read_spec_text(path: Path) -> str:
    """The text of a spec file: a regular file of at most MAX_SPEC_BYTES, UTF-8.

    A FIFO, a device or a folder is refused before it is read (reading a FIFO
    blocks until a writer comes; ``/dev/zero`` never ends).
    """

    def refuse(message: str) -> SpecError:
        return SpecError([Problem(str(path), 0, 0, "$", message)])

    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise refuse("expected a spec file, received a path that does not exist") from None
    except OSError as error:
        raise refuse(f"expected a readable spec file, received {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        raise refuse(f"expected a spec file (a regular file), received {file_kind(status.st_mode)}")
    if status.st_size > MAX_SPEC_BYTES:
        raise refuse(f"expected a spec file of at most {MAX_SPEC_BYTES:,} bytes, received {status.st_size:,} bytes")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, even if it became a FIFO
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise refuse("expected a spec file (a regular file), received one that changed while read")
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as error:
        raise refuse(f"expected a readable spec file, received {error.strerror or error}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise refuse(f"expected a spec file of at most {MAX_SPEC_BYTES:,} bytes, received more")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise refuse(
            f"expected UTF-8 text, received a byte {data[error.start]:#04x} at offset {error.start} that is not"
        ) from None


def parse_spec_file(path: Path) -> YamlDocument:
    """A spec file read safely and parsed with positions (:func:`parse_yaml`); SpecError when it cannot be."""
    return parse_yaml(read_spec_text(path), str(path))
