"""Variable-length HDF5 string attributes, read where a hang cannot stop vggspec.

A variable-length string's data is a reference into the file's global heap, and a damaged heap sends
the HDF5 library into a loop it never leaves (the fuzz tests found a flipped bit that turned a
fixed-length attribute into one). Such an attribute is read by a forked child that is killed when it
takes too long; :func:`vggspec.weights.hdf5.string_list` checks the attribute's size and type first.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from vggspec.errors import WeightsError

MAX_ATTRIBUTE_BYTES = 1 << 24  # 16 MiB: MAX_NAMES names of 160 bytes

ISOLATED_READ_S = 10.0  # a forked child's time to read one attribute (a few milliseconds when the file is whole)


def isolated_strings(obj: Any, name: str, where: str) -> list[str]:
    """The variable-length string attribute ``name`` of ``obj`` (scalar or array), read by a forked child that
    is killed when it does not finish within ISOLATED_READ_S: the HDF5 library loops for ever on a damaged
    global heap, and a child can be stopped where a call in this process could not. WeightsError naming
    ``where`` when the child fails or runs out of time."""
    import select
    import signal

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, send JSON, leave without running the parent's exit handlers
        code = 1
        try:
            os.close(reader)
            values = [v.decode("utf8", "replace") if isinstance(v, bytes) else str(v) for v in
                      np.asarray(obj.attrs[name]).ravel()]  # fmt: skip
            data = json.dumps(values).encode()[: MAX_ATTRIBUTE_BYTES * 2]
            while data:
                data = data[os.write(writer, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    chunks, deadline = [], time.monotonic() + ISOLATED_READ_S
    try:
        while True:
            ready, _, _ = select.select([reader], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise WeightsError(
                    f"{where}: expected a string the HDF5 library can read, received one it was still reading after "
                    f"{ISOLATED_READ_S:g} s (a damaged file)"
                )
            chunk = os.read(reader, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(reader)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise WeightsError(f"{where}: expected a readable string, received one the HDF5 library cannot read")
    return [str(value) for value in json.loads(b"".join(chunks))]
