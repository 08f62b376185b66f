"""A feature cache's folder: what it holds, whether it is complete, and batches read from it.

::

    <spec>-<freeze>-<backend>-<dtype>-<16 hex digits of its key>/
        cache.json   what the features are of (the key, and where they came from) and their shape
        train.npy    (N_train, *shape) the train split's features in folder order, float16 or float32
        val.npy      (N_val, *shape) the val split's

``shape`` is the last frozen layer's output shape in the plan's layout (NHWC maps without the
batch axis, e.g. (7, 7, 512) after VGG16's block5_pool). The arrays are read memory-mapped
(``numpy.load(mmap_mode="r")``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vggspec.training.batches import ImageBatches, VisitedBatches

CACHE_JSON = "cache.json"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class FeatureCache:
    """One run's feature cache: where it lives, what it holds, and the images it is computed from."""

    folder: Path  # the complete cache (it may not exist yet)
    key: dict[str, Any]  # what the features are of; its SHA-256 names the folder
    digest: str
    layer: str  # the last frozen layer
    shape: tuple[int, ...]  # its output shape, the plan's layout
    dtype: str  # "float16" or "float32"
    images: dict[str, ImageBatches]  # "train", "val": the images in folder order, not augmented
    about: dict[str, Any]  # for people reading cache.json: the weight file and data folder

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def array_path(self, split: str, folder: Optional[Path] = None) -> Path:
        return (folder or self.folder) / f"{split}.npy"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def open_cache(cache: FeatureCache) -> Optional[str]:
    """None when ``cache.folder`` holds this key's complete features (both arrays of the expected shapes
    and dtype), else why not: "absent" or what is wrong with it."""
    if not cache.folder.is_dir():
        return "absent"
    written = _read_json(cache.folder / CACHE_JSON)
    if not isinstance(written, dict) or written.get("digest") != cache.digest:
        return f"{cache.folder / CACHE_JSON} does not describe this key"
    for split in SPLITS:
        expected = (len(cache.images[split].images), *cache.shape)
        try:
            array = np.load(cache.array_path(split), mmap_mode="r")
        except (OSError, ValueError) as error:
            return f"{cache.array_path(split)} cannot be read ({error})"
        if array.shape != expected or array.dtype != np.dtype(cache.dtype):
            return f"{cache.array_path(split)} holds {array.dtype} {array.shape}, not {cache.dtype} {expected}"
    return None


class FeatureBatches(VisitedBatches):
    """A :class:`~vggspec.training.protocol.BatchSource` over cached features: ``batch(i)`` -> (features
    float32 (N, *shape), labels int64 (N,)), visited in the order :class:`ImageBatches` visits the images
    (:class:`~vggspec.training.batches.VisitedBatches`); never augmented. The array is opened memory-mapped
    when first read (and again in each process a data loader starts: a pickled source carries the path,
    not the array)."""

    def __init__(
        self,
        path: Path,
        labels: np.ndarray,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__(labels, batch_size, train=train, seed=seed, rank=rank, world_size=world_size)
        self.path = Path(path)
        self._features: Optional[np.ndarray] = None

    @property
    def features(self) -> np.ndarray:
        if self._features is None:
            self._features = np.load(self.path, mmap_mode="r")
        return self._features

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_features": None}

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.chosen(index)
        return np.asarray(self.features[chosen], dtype=np.float32), self.all_labels[chosen]
