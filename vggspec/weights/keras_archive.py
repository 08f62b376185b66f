"""Keras 3 ``.keras`` model archives, read for their weights without importing Keras.

``model.save("m.keras")`` writes a zip holding ``metadata.json``, ``config.json`` and
``model.weights.h5``, the last in the Keras 3 ``.weights.h5`` layout (:mod:`.keras3_h5`).
That member is copied (at most the bytes the spec's parameters can need, see
:func:`vggspec.weights.bundle.archive_bytes_limit`) into a private temporary folder under
a name of ours, never the member's, read there with every check of a ``.weights.h5``
file, and removed when the reading ends. Writing a ``.keras`` file needs the model itself:
``vggspec build`` with the keras backend and a ``.keras`` output.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator, Union

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import StoredBundle, archive_bytes_limit
from vggspec.weights.hdf5 import open_h5
from vggspec.weights.keras3_h5 import stored_keras3_h5
from vggspec.weights.zip_archive import copy_member, declared_sizes

WEIGHTS_MEMBER = "model.weights.h5"
WHAT = "a Keras 3 model archive (.keras, a zip)"


@contextlib.contextmanager
def stored_keras_archive(path: Union[str, Path], plan: Plan) -> Iterator[StoredBundle]:
    """Describe the weights of a ``.keras`` file (StoredArrays, readable inside the block), matched to the plan."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path}: expected {WHAT}, received {path.stat().st_size:,} bytes that are not a zip")
    members = declared_sizes(path, WHAT)
    if WEIGHTS_MEMBER not in members:
        listed = ", ".join(name if name.isprintable() else repr(name) for name in sorted(members)[:8]) or "no members"
        raise WeightsError(f"{path}: expected the member {WEIGHTS_MEMBER} in {WHAT}, received an archive with {listed}")
    with tempfile.TemporaryDirectory(prefix="vggspec-keras-") as folder:
        extracted = Path(folder) / "weights.h5"
        copy_member(path, WEIGHTS_MEMBER, extracted, archive_bytes_limit(plan.total_params), WHAT)
        name = f"{path} ({WEIGHTS_MEMBER})"
        with open_h5(extracted, name) as file:
            yield stored_keras3_h5(file, name, plan)
