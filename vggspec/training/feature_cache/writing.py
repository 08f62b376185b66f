"""Computing a feature cache: the frozen layers run once over every image, written atomically.

The features are written into a private partial folder beside the cache
(:func:`~vggspec.fileio.atomic_folder`: ``.<name>.partial-<host>-<pid>/``), flushed to disk, then
renamed. A partial folder (a run killed while caching) is never read, and the next run that caches
the same key removes it once its process is gone.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from vggspec.errors import BackendError, DataError, VggspecError
from vggspec.fileio import DestinationTaken, atomic_folder
from vggspec.training.batches import prefetched
from vggspec.training.feature_cache.folder import CACHE_JSON, SPLITS, FeatureCache, open_cache
from vggspec.training.feature_cache.key import CACHE_FORMAT, CACHE_VERSION
from vggspec.training.protocol import TrainsOnFeatures

FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
SPARE_BYTES = 64 << 20  # free space kept on the disk beyond the features


def build_cache(cache: FeatureCache, trainer: TrainsOnFeatures, check: Callable[[], None] = lambda: None) -> None:
    """Compute the features of both splits with ``trainer`` and make them ``cache.folder`` once complete (a
    progress bar on stderr). ``check`` is called after every batch (it raises to stop); on any error or stop
    nothing is left. Should another run complete this key's cache first, that one is kept."""
    from tqdm import tqdm

    parent = cache.folder.parent
    total = sum(len(cache.images[split].images) for split in SPLITS)
    with _writing(parent):
        try:
            with atomic_folder(cache.folder, sync=True) as partial:
                _check_free_space(cache, parent)
                with tqdm(
                    total=total, desc=f"features of {cache.layer}", unit="image", file=sys.stderr, leave=False
                ) as bar:

                    def step(images: int) -> None:
                        bar.update(images)
                        check()

                    for split in SPLITS:
                        _write_array(cache, trainer, split, partial, step)
                (partial / CACHE_JSON).write_text(json.dumps(_about(cache), indent=2) + "\n", encoding="utf-8")
        except DestinationTaken:
            if open_cache(cache) is not None:  # not another run's complete cache of this key
                raise


def remove_cache(cache: FeatureCache) -> None:
    """Remove ``cache.folder`` (found damaged); a folder that cannot be removed is a DataError naming ``cache_dir``."""
    with _writing(cache.folder.parent):
        shutil.rmtree(cache.folder)


def _about(cache: FeatureCache) -> dict[str, Any]:
    """cache.json: what the features are of and where they came from."""
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "digest": cache.digest,
        "layer": cache.layer,
        "shape": list(cache.shape),
        "dtype": cache.dtype,
        "images": {split: len(cache.images[split].images) for split in SPLITS},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "from": cache.about,
        "key": cache.key,
    }


def _write_array(
    cache: FeatureCache,
    trainer: TrainsOnFeatures,
    split: str,
    folder: Path,
    step: Callable[[int], None],
) -> None:
    """Compute one split's features batch by batch and append them to ``folder/<split>.npy`` (a .npy header
    for the whole array first), as plain writes: a full disk is an error, never a crash of a mapping."""
    images = cache.images[split]
    dtype = np.dtype(cache.dtype)
    with open(cache.array_path(split, folder), "wb") as file:
        shape = (len(images.images), *cache.shape)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(file, header)
        for pixels, _ in prefetched(images):
            file.write(_stored(cache, trainer.frozen_features(pixels), len(pixels)).data)
            step(len(pixels))


def _stored(cache: FeatureCache, outputs: Any, count: int) -> np.ndarray:
    """One batch's frozen outputs as stored: checked for shape, in the cache's dtype, C-contiguous."""
    features = np.asarray(outputs)
    if features.shape != (count, *cache.shape):
        raise BackendError(
            f"frozen_features: expected outputs of shape {(count, *cache.shape)} "
            f"(the output of {cache.layer}), received {features.shape}"
        )
    dtype = np.dtype(cache.dtype)
    with np.errstate(over="ignore"):  # told below, in the caller's words
        stored = features.astype(dtype, copy=False)
    if dtype == np.float16 and not np.isfinite(stored).all() and np.isfinite(features).all():
        largest = float(np.abs(features).max())
        raise VggspecError(
            f"cache_dtype: expected features that float16 holds (|x| <= {FLOAT16_MAX:g}), received "
            f"{largest:.4g} from {cache.layer}: cache them as float32",
            setting="cache_dtype",
        )
    return np.ascontiguousarray(stored)


def _check_free_space(cache: FeatureCache, where: Path) -> None:
    needed = sum(len(cache.images[split].images) for split in SPLITS) * cache.row_bytes
    free = shutil.disk_usage(where).free
    if free < needed + SPARE_BYTES:
        raise DataError(
            f"cache_dir {where}: expected {needed / 1e9:.2f} GB free for the cached features of {cache.layer}, "
            f"received {free / 1e9:.2f} GB free (choose another folder"
            + (", or cache_dtype float16 to halve them)" if cache.dtype == "float32" else ")"),
            setting="cache_dir",
        )


@contextlib.contextmanager
def _writing(where: Path) -> Iterator[None]:
    """A place that cannot be written (a file in the way, no permission, a full disk) as one DataError."""
    try:
        yield
    except OSError as error:
        raise DataError(
            f"cache_dir {where}: expected a folder that can be created and written, received one that "
            f"cannot ({error.strerror or error})",
            setting="cache_dir",
        ) from None
