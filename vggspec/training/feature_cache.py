"""Cached features for a frozen base: the outputs of the frozen layers, computed once per image.

Training a new head on a frozen convolutional base runs the base on every image in every epoch,
though it computes the same outputs each time (VGG16 at 224×224: about 0.25 s an image on two CPU
cores, where the head takes about 0.01 s). With the ``cache_features`` setting the outputs of the
last frozen layer are computed once, in batches, and kept on disk; the epochs then train only the
layers after it on them (the Keras blog's "bottleneck features"), through a trainer that
:class:`~vggspec.training.protocol.TrainsOnFeatures`. Checkpoints stay those of the whole model.

Caching needs every epoch to see the same frozen outputs (:func:`check_cacheable`): no
augmentation, no stochastic frozen layer (Dropout), at least one frozen layer with weights, and
one process.

A cache is a folder in ``cache_dir`` (default ``$VGGSPEC_HOME/features``)::

    <spec>-<freeze>-<backend>-<dtype>-<16 hex digits of its key>/
        cache.json   what the features are of (the key, and where they came from) and their shape
        train.npy    (N_train, *shape) the train split's features in folder order, float16 or float32
        val.npy      (N_val, *shape) the val split's

``shape`` is the last frozen layer's output shape in the plan's layout (NHWC maps without the
batch axis, e.g. (7, 7, 512) after VGG16's block5_pool). The folder is named by the SHA-256 of its
key: the frozen layers (type, name, shape, settings), the input shape, preprocessing and image
pipeline; the weights (the SHA-256 of the weight file's bytes; from scratch, the backend and the
seed that initialise them); the backend; the dtype; and the data's identity, per split the
images' paths (relative to the split) and labels, with the SHA-256 of the data's manifest.json
when there is one, else with every image's size and modification time. Any change gives another
key, so stale features are never read.

A cache is written atomically: into ``.<name>.partial-<host>-<pid>/`` beside it, flushed to disk,
then renamed. A partial folder (a run killed while caching) is never read, and the next run that
caches the same key removes it once its process is gone. The arrays are read memory-mapped
(``numpy.load(mmap_mode="r")``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from vggspec.errors import BackendError, DataError, VggspecError
from vggspec.fileio import file_digest
from vggspec.planner.layers import Dropout, PlanLayer
from vggspec.planner.lower import Plan
from vggspec.training.batches import ImageBatches, VisitedBatches
from vggspec.training.folders import ImageSet
from vggspec.training.protocol import TrainConfig, TrainsOnFeatures

CACHE_FORMAT = "vggspec-feature-cache"
CACHE_VERSION = 1
PIPELINE = 1  # the image pipeline's version (decode, resize, preprocess): a change there is a new key
CACHE_JSON = "cache.json"
SPLITS = ("train", "val")
HASH_CHUNK = 1 << 22  # bytes read at a time when hashing a weight file
NAME_LENGTH = 40  # at most this much of a spec's name in a cache folder's name
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


def default_cache_dir() -> Path:
    """``$VGGSPEC_HOME/features`` (``~/.cache/vggspec/features`` without the variable)."""
    from vggspec.download import cache_home

    return cache_home() / "features"


def check_cacheable(plan: Plan, config: TrainConfig, world_size: int = 1) -> None:
    """Refuse ``cache_features`` where cached outputs would not be those the epochs compute: nothing frozen,
    a stochastic frozen layer, augmentation, several processes. VggspecError naming ``cache_features``."""

    def refuse(why: str) -> VggspecError:
        return VggspecError(f"cache_features: expected {why}", setting="cache_features")

    frozen = [layer for layer in plan.layers if layer.name in config.freeze]
    if not any(layer.weights for layer in frozen):
        shown = config.freeze[-1] if config.freeze else "none"
        raise refuse(f"frozen layers to cache the outputs of (e.g. freeze block5_pool), received freeze {shown}")
    stochastic = [layer.name for layer in frozen if isinstance(layer, Dropout)]
    if stochastic:
        raise refuse(
            f"frozen layers that give the same outputs every epoch, received freeze {config.freeze[-1]}, "
            f"which includes the dropout layer {stochastic[0]}"
        )
    if config.augment != "none":
        raise refuse(
            f"augment none (each image's features are computed once, so every epoch must see the same "
            f"image), received augment {config.augment}"
        )
    if world_size > 1:
        raise refuse(f"one process (the cache is written by one), received {world_size} (WORLD_SIZE)")


def check_trainer(trainer: Any, backend: str) -> TrainsOnFeatures:
    """``trainer`` when it can train on cached features; BackendError otherwise."""
    if isinstance(trainer, TrainsOnFeatures):
        return trainer
    raise BackendError(
        f"backend {backend!r}: expected a trainer that trains on cached features (a method frozen_features) "
        "for cache_features, received one without it",
        setting="cache_features",
    )


def file_sha256(path: Union[str, Path]) -> str:
    return file_digest(path, "sha256", HASH_CHUNK)


def _text_sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


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
    """The data's identity: per split the SHA-256 of its images' relative paths and labels (in the order the
    cache stores them), with each image's size and mtime unless the data has a manifest.json, whose SHA-256
    is then part of it."""
    manifest = Path(data_dir) / "manifest.json"
    identity: dict[str, Any] = {}
    if manifest.is_file():
        identity["manifest_sha256"] = file_sha256(manifest)
    for name, images in splits.items():
        entries: list[list[Any]] = []
        for path, label in zip(images.paths, images.labels.tolist()):
            entry: list[Any] = [path.relative_to(images.root).as_posix(), int(label)]
            if "manifest_sha256" not in identity:
                status = os.stat(path)
                entry += [status.st_size, status.st_mtime_ns]
            entries.append(entry)
        identity[name] = {"images": len(entries), "sha256": _text_sha256(entries)}
    return identity


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


def plan_feature_cache(
    plan: Plan,
    config: TrainConfig,
    backend: str,
    weights: Optional[str],
    data_dir: Union[str, Path],
    images: dict[str, ImageBatches],
) -> FeatureCache:
    """The cache of a run (``images``: "train" and "val" in folder order, not augmented); nothing is written.
    Hashes the weight file (about 1 s for VGG16's 553 MB) and lists the data."""
    layer = config.freeze[-1]
    key = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "pipeline": PIPELINE,
        "backend": backend,
        "input_shape": list(plan.input_shape),
        "preprocessing": plan.preprocessing,
        "frozen": [_layer_description(item) for item in plan.up_to(layer).layers],
        "weights": weights_identity(weights, backend, config.seed),
        "data": data_identity(data_dir, {split: batches.images for split, batches in images.items()}),
        "dtype": config.cache_dtype,
    }
    digest = _text_sha256(key)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", plan.name)[:NAME_LENGTH]
    folder = Path(config.cache_dir) if config.cache_dir is not None else default_cache_dir()
    return FeatureCache(
        folder=folder / f"{name}-{layer}-{backend}-{config.cache_dtype}-{digest[:16]}",
        key=key,
        digest=digest,
        layer=layer,
        shape=tuple(plan.layer(layer).output_shape),
        dtype=config.cache_dtype,
        images=images,
        about={
            "weights": None if weights is None else str(Path(weights).resolve()),
            "data": str(Path(data_dir).resolve()),
        },
    )


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


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _partial_prefix(cache: FeatureCache) -> str:
    return f".{cache.folder.name}.partial-"


def _remove_stale_partials(cache: FeatureCache) -> None:
    """Remove partial folders of this key left by processes of this host that are gone (a killed run)."""
    host = socket.gethostname()
    prefix = _partial_prefix(cache)
    for entry in cache.folder.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        owner, _, pid = entry.name[len(prefix) :].rpartition("-")
        if owner == host and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


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


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _prefetched(images: ImageBatches) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batches in order, the next one read in a thread while the caller computes (Pillow and numpy
    release the GIL)."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(images.batch, 0) if len(images) else None
        for index in range(len(images)):
            assert pending is not None
            batch = pending.result()
            pending = pool.submit(images.batch, index + 1) if index + 1 < len(images) else None
            yield batch


def _write_split(
    cache: FeatureCache,
    trainer: TrainsOnFeatures,
    split: str,
    folder: Path,
    step: Callable[[int], None],
) -> None:
    """Compute one split's features batch by batch and append them to ``folder/<split>.npy`` (a .npy header
    for the whole array first), as plain writes: a full disk is an error, never a crash of a mapping."""
    images = cache.images[split]
    count = len(images.images)
    dtype = np.dtype(cache.dtype)
    path = cache.array_path(split, folder)
    with open(path, "wb") as file:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count, *cache.shape)}
        np.lib.format.write_array_header_1_0(file, header)
        for pixels, _ in _prefetched(images):
            features = np.asarray(trainer.frozen_features(pixels))
            if features.shape != (len(pixels), *cache.shape):
                raise BackendError(
                    f"frozen_features: expected outputs of shape {(len(pixels), *cache.shape)} "
                    f"(the output of {cache.layer}), received {features.shape}"
                )
            with np.errstate(over="ignore"):  # told below, in the caller's words
                stored = features.astype(dtype, copy=False)
            if dtype == np.float16 and not np.isfinite(stored).all() and np.isfinite(features).all():
                largest = float(np.abs(features).max())
                raise VggspecError(
                    f"cache_dtype: expected features that float16 holds (|x| <= {FLOAT16_MAX:g}), received "
                    f"{largest:.4g} from {cache.layer}: cache them as float32",
                    setting="cache_dtype",
                )
            file.write(np.ascontiguousarray(stored).data)
            step(len(pixels))
    _fsync(path)


def _check_free_space(cache: FeatureCache, where: Path) -> None:
    needed = sum(len(cache.images[split].images) for split in SPLITS) * cache.row_bytes
    free = shutil.disk_usage(where).free
    if free < needed + (64 << 20):
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


def build_cache(cache: FeatureCache, trainer: TrainsOnFeatures, check: Callable[[], None] = lambda: None) -> None:
    """Compute the features of both splits with ``trainer`` into a partial folder and rename it to
    ``cache.folder`` once complete (a progress bar on stderr). ``check`` is called after every batch (it
    raises to stop); on any error or stop the partial folder is removed."""
    from tqdm import tqdm

    parent = cache.folder.parent
    with _writing(parent):
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(cache)
        partial = parent / f"{_partial_prefix(cache)}{socket.gethostname()}-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)  # this pid's, from a run long gone
        partial.mkdir()
    try:
        _check_free_space(cache, parent)
        total = sum(len(cache.images[split].images) for split in SPLITS)
        with (
            _writing(parent),
            tqdm(total=total, desc=f"features of {cache.layer}", unit="image", file=sys.stderr, leave=False) as bar,
        ):

            def step(images: int) -> None:
                bar.update(images)
                check()

            for split in SPLITS:
                _write_split(cache, trainer, split, partial, step)
            about = {
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
            (partial / CACHE_JSON).write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
            _fsync(partial / CACHE_JSON)
            try:
                os.rename(partial, cache.folder)
            except OSError:
                if open_cache(cache) is not None:  # not another run's complete cache of this key
                    raise
                shutil.rmtree(partial, ignore_errors=True)
            _fsync(parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def cached_batches(
    cache: FeatureCache,
    trainer: TrainsOnFeatures,
    batch_size: int,
    seed: int,
    say: Callable[[str], None],
    check: Callable[[], None] = lambda: None,
) -> tuple[FeatureBatches, FeatureBatches]:
    """(train, val) batches of the cached features: this key's cache when complete, else computed now with
    ``trainer`` (its frozen layers as they are now: after a resumed run restored its checkpoint)."""
    counts = f"{len(cache.images['train'].images)} training and {len(cache.images['val'].images)} validation images"
    problem = open_cache(cache)
    if problem is None:
        say(f"features: reusing {cache.folder} (outputs of {cache.layer} for {counts})")
    else:
        if problem != "absent":
            say(f"features: computing them again ({problem})")
            with _writing(cache.folder.parent):
                shutil.rmtree(cache.folder)
        say(f"features: computing the outputs of {cache.layer} once for {counts} into {cache.folder}")
        started = time.monotonic()
        build_cache(cache, trainer, check)
        say(f"features: cached in {time.monotonic() - started:.1f} s")
    train = cache.images["train"]
    return (
        FeatureBatches(cache.array_path("train"), train.images.labels, batch_size, train=True, seed=seed),
        FeatureBatches(cache.array_path("val"), cache.images["val"].images.labels, batch_size, train=False),
    )
