"""What cached features are of: the key whose SHA-256 names a cache folder.

The key holds the frozen layers (type, name, shape, settings), the input shape, preprocessing and
image pipeline; the weights (the SHA-256 of the weight file's bytes; from scratch, the backend and
the seed that initialise them); the backend; the dtype; and the data's identity, per split the
images' paths (relative to the split), labels, sizes and modification times, with the SHA-256 of
the data's manifest.json when there is one. Any change gives another key, so stale features are
never read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional, Union

from vggspec.fileio import file_digest
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan
from vggspec.training.folders import ImageSet

CACHE_FORMAT = "vggspec-feature-cache"
CACHE_VERSION = 1
PIPELINE = 1  # the image pipeline's version (decode, resize, preprocess): a change there is a new key
HASH_CHUNK = 1 << 22  # bytes read at a time when hashing a weight file


def feature_key(
    plan: Plan,
    layer: str,
    backend: str,
    weights: Optional[str],
    seed: int,
    dtype: str,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The key of the outputs of ``plan``'s layers up to ``layer`` (``data``: :func:`data_identity`)."""
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "pipeline": PIPELINE,
        "backend": backend,
        "input_shape": list(plan.input_shape),
        "preprocessing": plan.preprocessing,
        "frozen": [_layer_description(item) for item in plan.up_to(layer).layers],
        "weights": weights_identity(weights, backend, seed),
        "data": data,
        "dtype": dtype,
    }


def key_sha256(value: Any) -> str:
    """The SHA-256 (hex) of a JSON-ready value, keys sorted."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def file_sha256(path: Union[str, Path]) -> str:
    return file_digest(path, "sha256", HASH_CHUNK)


def _layer_description(layer: PlanLayer) -> dict[str, Any]:
    return {"type": layer.type_name, "name": layer.name, "output_shape": list(layer.output_shape), **layer.config()}


def weights_identity(weights: Optional[str], backend: str, seed: int) -> dict[str, Any]:
    """What the frozen layers' values come from: the weight file's SHA-256, or (from scratch) the backend's
    initialisation with ``seed``. A weight file that cannot be read (a resumed run whose file has moved) is
    named by its path: its features are then computed from the run's checkpoint, under that name."""
    if weights is None:
        return {"initialisation": backend, "seed": seed}
    try:
        return {"sha256": file_sha256(weights)}
    except OSError:
        return {"unreadable_file": str(Path(weights).resolve())}


def data_identity(data_dir: Union[str, Path], splits: dict[str, ImageSet]) -> dict[str, Any]:
    """The data's identity: per split the SHA-256 of its images' relative paths, labels, sizes (bytes) and
    modification times (ns), in the order the cache stores them, with the SHA-256 of the data's manifest.json
    when there is one. Every image counts even then: a manifest describes the data as it was written, and an
    image overwritten in place later leaves it unchanged."""
    manifest = Path(data_dir) / "manifest.json"
    identity: dict[str, Any] = {}
    if manifest.is_file():
        identity["manifest_sha256"] = file_sha256(manifest)
    for name, images in splits.items():
        entries: list[list[Any]] = []
        for path, label in zip(images.paths, images.labels.tolist()):
            status = os.stat(path)
            entries.append([path.relative_to(images.root).as_posix(), int(label), status.st_size, status.st_mtime_ns])
        identity[name] = {"images": len(entries), "sha256": key_sha256(entries)}
    return identity
