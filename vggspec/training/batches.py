"""The one data pipeline of training, for every backend: numpy + Pillow.

An image is read as :func:`vggspec.images.load_image` reads it (0..255, with
the spec's channels: gray, RGB or RGBA; resized to the spec's input size with
nearest-neighbour sampling, as ``vggspec predict`` does), then, for training
only, augmented as the ``augment`` setting says: "crop" pads it by 1/16 of its size on
each side (reflecting its border) and crops it back to the input size at a random
offset; "flip" flips it left-right with probability 1/2 (wrong for digits, text and
other handed images: choose "crop" or "none" for those); "flip,crop" does both (the
default); "none" neither. Finally the spec's preprocessing is applied
(:func:`vggspec.preprocessing.preprocess`).

Everything random is drawn from ``numpy.random.default_rng((seed, epoch, ...))``:
the same seed and epoch give the same batches in any process, with any
number of data workers. Training batches are reshuffled each epoch; with
``world_size`` > 1 each rank takes every ``world_size``-th image of the
shuffled order, padded with its first images to a multiple of ``world_size``
(as torch's ``DistributedSampler``), so every rank runs the same number of
batches. Evaluation keeps the folder order and is split without padding
(:class:`VisitedBatches`; the cached features of :mod:`.feature_cache` are visited alike).
"""

from __future__ import annotations

import collections
import math
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

import numpy as np

from vggspec.images import load_image
from vggspec.preprocessing import preprocess
from vggspec.training.folders import ImageSet
from vggspec.training.protocol import AUGMENTATIONS, BatchSource


def augment(image: np.ndarray, rng: np.random.Generator, flip: bool = True, crop: bool = True) -> np.ndarray:
    """Random reflect-pad-and-crop (1/16 of each side) and left-right flip of one HWC image (each when asked)."""
    if crop:
        height, width = image.shape[:2]
        pad_y, pad_x = max(1, height // 16), max(1, width // 16)
        padded = np.pad(image, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
        top = int(rng.integers(0, 2 * pad_y + 1))
        left = int(rng.integers(0, 2 * pad_x + 1))
        image = padded[top : top + height, left : left + width]
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
    return image


class VisitedBatches:
    """The batches one rank visits of ``all_labels``' items (int64 (N,)) in an epoch, in order: shuffled
    by (seed, epoch) and padded to a multiple of ``world_size`` for training (as torch's
    ``DistributedSampler``), in folder order and split without padding for evaluation. A subclass
    gives ``batch(i)`` for the items ``chosen(i)``: :class:`ImageBatches` reads images,
    :class:`~vggspec.training.feature_cache.FeatureBatches` cached features."""

    def __init__(self, all_labels: np.ndarray, batch_size: int, *, train: bool, seed: int, rank: int, world_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, received {batch_size}")
        self.all_labels = np.asarray(all_labels, dtype=np.int64)
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 1
        self.order = self._order()

    def _order(self) -> np.ndarray:
        """Indices of the items that this rank visits this epoch, in order."""
        count = len(self.all_labels)
        if not self.train:
            return np.arange(count)[self.rank :: self.world_size]
        order = np.random.default_rng((self.seed, self.epoch)).permutation(count)
        padded = math.ceil(count / self.world_size) * self.world_size
        order = np.concatenate([order, order[: padded - count]])
        return order[self.rank :: self.world_size]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = self._order()

    @property
    def labels(self) -> np.ndarray:
        """The labels of this rank's items, in batch order."""
        return self.all_labels[self.order]

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def chosen(self, index: int) -> np.ndarray:
        """The indices of the items in batch ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index}: expected 0 to {len(self) - 1}")
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]


class ImageBatches(VisitedBatches):
    """A :class:`~vggspec.training.protocol.BatchSource` over an :class:`ImageSet`.

    ``batch(i)`` -> (images NHWC float32, preprocessed; labels int64 (N,)).
    ``channels`` (C) is 1, 3 or 4 (:mod:`vggspec.images`). ``train=True``
    shuffles and augments as ``augment`` says (one of
    :data:`~vggspec.training.protocol.AUGMENTATIONS`); ``rank``/``world_size`` pick
    this process' share of a distributed run.
    """

    def __init__(
        self,
        images: ImageSet,
        size: tuple[int, int],
        preprocessing: str,
        batch_size: int,
        *,
        train: bool,
        channels: int = 3,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        augment: str = "flip,crop",
    ):
        super().__init__(images.labels, batch_size, train=train, seed=seed, rank=rank, world_size=world_size)
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment: expected one of {', '.join(AUGMENTATIONS)}, received {augment!r}")
        self.images = images
        self.size = (int(size[0]), int(size[1]))
        self.channels = channels
        self.preprocessing = preprocessing
        self.flip, self.crop = ("flip" in augment.split(",")), ("crop" in augment.split(","))

    def _image(self, index: int) -> np.ndarray:
        image = load_image(self.images.paths[index], self.size, self.channels)
        if self.train and (self.flip or self.crop):
            image = augment(image, np.random.default_rng((self.seed, self.epoch, int(index))), self.flip, self.crop)
        return image

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.chosen(index)
        pixels = np.stack([self._image(int(i)) for i in chosen])
        return preprocess(pixels, self.preprocessing), self.all_labels[chosen]


def prefetched(source: BatchSource, ahead: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``source``'s batches in order, the next ``ahead`` read in as many threads while the caller computes
    (Pillow and numpy release the GIL); ``ahead`` 0 reads each one when it is asked for."""
    if ahead < 1:
        yield from (source.batch(index) for index in range(len(source)))
        return
    with ThreadPoolExecutor(ahead) as pool:
        pending: collections.deque[Future[tuple[np.ndarray, np.ndarray]]] = collections.deque()
        for index in range(len(source)):
            while len(pending) <= ahead and index + len(pending) < len(source):
                pending.append(pool.submit(source.batch, index + len(pending)))
            yield pending.popleft().result()
