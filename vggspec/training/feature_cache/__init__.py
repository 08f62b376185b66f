"""Cached features for a frozen base: the outputs of the frozen layers, computed once per image.

Training a new head on a frozen convolutional base runs the base on every image in every epoch,
though it computes the same outputs each time, and the base costs far more than the head. With the
``cache_features`` setting the outputs of the last frozen layer are computed once, in batches, and
kept on disk; the epochs then train only the layers after it on them (the Keras blog's "bottleneck
features"), through a trainer that :class:`~vggspec.training.protocol.TrainsOnFeatures`.
Checkpoints stay those of the whole model.

Caching needs every epoch to see the same frozen outputs (:func:`check_cacheable`): no
augmentation, no stochastic frozen layer (Dropout), at least one frozen layer with weights, and
one process.

A cache is a folder in ``cache_dir`` (default ``$VGGSPEC_HOME/features``) named by the SHA-256 of
what its features are of (:mod:`.key`), holding them as arrays (:mod:`.folder`), and written
atomically (:mod:`.writing`): a cache folder is complete, and stale or half-written features are
never read.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from vggspec.errors import BackendError, VggspecError
from vggspec.fileio import check_destination
from vggspec.planner.layers import Dropout
from vggspec.planner.lower import Plan
from vggspec.training.batches import ImageBatches
from vggspec.training.distributed import launcher
from vggspec.training.feature_cache.folder import FeatureBatches, FeatureCache, open_cache
from vggspec.training.feature_cache.key import data_identity, feature_key, key_sha256
from vggspec.training.feature_cache.writing import build_cache, remove_cache
from vggspec.training.protocol import TrainConfig, TrainsOnFeatures

NAME_LENGTH = 40  # at most this much of a spec's name in a cache folder's name


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
        raise refuse(f"one process (the cache is written by one), received {world_size} processes ({launcher()})")
    # where it goes, before anything is written: a run folder is not left behind for a cache that cannot be made
    check_destination(cache_folder(config), "cache_dir", folder=True)


def cache_folder(config: TrainConfig) -> Path:
    """The folder caches go in: ``cache_dir``, or :func:`default_cache_dir`."""
    return Path(config.cache_dir) if config.cache_dir is not None else default_cache_dir()


def check_trainer(trainer: Any, backend: str) -> TrainsOnFeatures:
    """``trainer`` when it can train on cached features; BackendError otherwise."""
    if isinstance(trainer, TrainsOnFeatures):
        return trainer
    raise BackendError(
        f"backend {backend!r}: expected a trainer that trains on cached features (a method frozen_features) "
        "for cache_features, received one without it",
        setting="cache_features",
    )


def plan_feature_cache(
    plan: Plan,
    config: TrainConfig,
    backend: str,
    weights: Optional[str],
    data_dir: Union[str, Path],
    images: dict[str, ImageBatches],
) -> FeatureCache:
    """The cache of a run (``images``: "train" and "val" in folder order, not augmented); nothing is written.
    Hashes the weight file and lists the data."""
    layer = config.freeze[-1]
    data = data_identity(data_dir, {split: batches.images for split, batches in images.items()})
    key = feature_key(plan, layer, backend, weights, config.seed, config.cache_dtype, data)
    digest = key_sha256(key)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", plan.name)[:NAME_LENGTH]
    folder = cache_folder(config)
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
            remove_cache(cache)
        say(f"features: computing the outputs of {cache.layer} once for {counts} into {cache.folder}")
        started = time.monotonic()
        build_cache(cache, trainer, check)
        say(f"features: cached in {time.monotonic() - started:.1f} s")
    train = cache.images["train"]
    return (
        FeatureBatches(cache.array_path("train"), train.images.labels, batch_size, train=True, seed=seed),
        FeatureBatches(cache.array_path("val"), cache.images["val"].images.labels, batch_size, train=False),
    )
