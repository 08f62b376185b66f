"""What a backend provides to train: ``backend.seed(seed)``, ``backend.trainer(model, plan, config, settings)``
-> Trainer, and optionally ``backend.training_settings`` (:mod:`vggspec.training.backend_settings`).

The core owns the data (one pipeline for every framework: the same images,
augmentation and preprocessing), the epoch loop, metrics.csv, the plot and the
run folder; a backend owns only the optimisation step and its checkpoint format.
Losses and accuracies of validation are computed by the core from the model's
outputs (:mod:`vggspec.training.metrics`), so every backend is scored alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from vggspec.errors import VggspecError

# each optimizer a backend must offer, and the fields of TrainConfig it takes besides the learning rate
OPTIMIZER_OPTIONS: dict[str, tuple[str, ...]] = {"adam": (), "sgd": ("momentum",)}
OPTIMIZERS = tuple(OPTIMIZER_OPTIONS)
# the key (torch) or root attribute (Keras' .weights.h5) under which a checkpoint holds the loop's state, as JSON text
CHECKPOINT_STATE = "vggspec_state"
# what training batches may do to an image (vggspec.training.batches.augment): flips are wrong for digits and text
AUGMENTATIONS = ("none", "flip", "crop", "flip,crop")
CACHE_DTYPES = ("float16", "float32")  # how cached features are stored (float16: half the disk, ~3 digits)
# each data worker is a process (torch) or a thread (keras) holding batches ahead; more than this only costs memory
MAX_WORKERS = 64


def _finite(value: object) -> bool:
    """A real number (bool excluded) that is neither infinite nor NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run, meant alike by every backend. These defaults are the library's and the
    command line's. A backend's own settings (torch's device, for one) are its ``training_settings``
    (:mod:`vggspec.training.backend_settings`).

    ``freeze`` lists the plan layer names kept frozen (filled in by the run from its
    ``freeze`` setting). Every value is checked on construction; a bad one raises a
    :class:`VggspecError` whose ``setting`` is the field's name.

    ``cache_features``: the outputs of the frozen layers are computed once per image and
    kept on disk (:mod:`vggspec.training.feature_cache`, in ``cache_dir``, as ``cache_dtype``);
    the epochs then train only the layers after ``freeze`` on them (a :class:`TrainsOnFeatures`
    trainer). It needs ``augment`` "none" and frozen layers that are deterministic.
    """

    epochs: int = 10  # in all, counting those a resumed run has finished
    batch_size: int = 32  # images per batch and process
    optimizer: str = "adam"  # "adam" or "sgd" (with ``momentum``)
    learning_rate: float = 1e-3
    momentum: float = 0.9  # sgd only
    freeze: tuple[str, ...] = ()
    workers: int = 2  # data loading workers, 0 to MAX_WORKERS
    seed: int = 0  # shuffling, augmentation and dropout, 0 to 2**32 - 1
    augment: str = "flip,crop"  # training images: "none", "flip" (left-right), "crop" (pad and crop), "flip,crop"
    cache_features: bool = False  # compute the frozen layers' outputs once and train the rest on them
    cache_dtype: str = "float32"  # the cached features' type: "float32" (exact) or "float16" (half the disk)
    cache_dir: Optional[str] = None  # where cached features live; None: $VGGSPEC_HOME/features

    def __post_init__(self) -> None:
        from vggspec.parity.inputs import checked_seed

        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise VggspecError(f"{name}: expected a positive integer, received {value!r}", setting=name)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or not 0 <= self.workers <= MAX_WORKERS:
            raise VggspecError(f"workers: expected 0 to {MAX_WORKERS}, received {self.workers!r}", setting="workers")
        if self.optimizer not in OPTIMIZERS:
            raise VggspecError(
                f"optimizer: expected {' or '.join(OPTIMIZERS)}, received {self.optimizer!r}", setting="optimizer"
            )
        if not _finite(self.learning_rate) or self.learning_rate <= 0:
            raise VggspecError(
                f"learning_rate: expected a positive learning rate, received {self.learning_rate!r}",
                setting="learning_rate",
            )
        if not _finite(self.momentum) or not 0 <= self.momentum <= 1:
            raise VggspecError(f"momentum: expected 0 to 1, received {self.momentum!r}", setting="momentum")
        for name, choices in (("augment", AUGMENTATIONS), ("cache_dtype", CACHE_DTYPES)):
            if getattr(self, name) not in choices:
                raise VggspecError(
                    f"{name}: expected one of {', '.join(choices)}, received {getattr(self, name)!r}", setting=name
                )
        if not isinstance(self.cache_features, bool):
            raise VggspecError(
                f"cache_features: expected true or false, received {self.cache_features!r}", setting="cache_features"
            )
        if self.cache_dir is not None and (not isinstance(self.cache_dir, str) or not self.cache_dir):
            raise VggspecError(f"cache_dir: expected a folder, received {self.cache_dir!r}", setting="cache_dir")
        try:
            checked_seed(self.seed)
        except VggspecError as error:
            raise VggspecError(str(error), setting="seed") from None

    def optimizer_options(self) -> dict[str, float]:
        """The chosen optimizer's hyper-parameters besides the learning rate, by field name (sgd: momentum)."""
        return {name: getattr(self, name) for name in OPTIMIZER_OPTIONS[self.optimizer]}


class BatchSource(Protocol):
    """Batches of one split: ``len()`` batches per epoch; ``batch(i)`` -> (NHWC float32 preprocessed, int64 labels)."""

    @property
    def labels(self) -> np.ndarray:
        """int64 (N,): the labels of this process' images, in batch order."""

    def __len__(self) -> int: ...

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle and redraw the augmentation for ``epoch`` (deterministic for a seed)."""


class Progress(Protocol):
    """The epoch's progress bar, owned by the core (silent on ranks other than 0)."""

    def step(self, loss: float, accuracy: float) -> None:
        """One batch done; ``loss`` and ``accuracy`` are the epoch's running means so far."""


class Trainer(Protocol):
    """One model being trained by a backend, in one process (one rank of a distributed run).

    A trainer whose ``save_checkpoint`` is a collective of its framework (every rank must call it, as
    Keras' ``save_weights`` under a tf.distribute strategy) has the attribute ``saves_on_every_rank`` true:
    the ranks that do not write the run folder then save into a temporary folder.
    """

    def train_epoch(self, data: BatchSource, epoch: int, progress: Progress) -> dict[str, float]:
        """One pass over ``data``; returns this process' {"loss": mean, "accuracy": fraction, "count": images}
        (:class:`~vggspec.training.metrics.RunningMeans`). Its dropout masks are drawn from
        :func:`~vggspec.training.seeds.dropout_seed` (the same in a resumed run)."""

    def predict(self, data: BatchSource) -> np.ndarray:
        """The model's outputs (N, classes) float32 for every batch in order, in inference mode."""

    def save_checkpoint(self, path: str, state: dict[str, Any]) -> None:
        """Weights, optimizer state and the core's JSON-able ``state`` (as JSON text under CHECKPOINT_STATE),
        in one file written atomically."""

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        """Restore what ``save_checkpoint`` wrote; return its ``state``."""

    def weights_file_suffix(self) -> str:
        """The checkpoint's file suffix, e.g. ".pt" or ".weights.h5"."""

    def all_gather(self, values: np.ndarray) -> np.ndarray:
        """``values`` of every process stacked on a new first axis (``values[None]`` in a single process)."""

    def close(self) -> None:
        """Release what the trainer holds (a distributed process group, workers)."""


@runtime_checkable
class TrainsOnFeatures(Protocol):
    """Optional, for ``config.cache_features``: a :class:`Trainer` that trains the layers after the frozen ones
    on their cached outputs.

    Such a trainer, made with ``config.cache_features`` true, takes in ``train_epoch`` and ``predict``
    batches whose first array holds features instead of images: the outputs of the last frozen layer
    (``config.freeze[-1]``), in the plan's layout (NHWC maps, or vectors after ``flatten`` in its H,W,C
    order), float32. Its checkpoints are those of the whole model, as without the cache.
    """

    def frozen_features(self, images: np.ndarray) -> np.ndarray:
        """The outputs of the last frozen layer for a batch of preprocessed NHWC float32 ``images``, in inference
        mode: float32 of shape (N, *plan.layer(config.freeze[-1]).output_shape)."""


@runtime_checkable
class TrainingBackend(Protocol):
    """The two methods a backend adds to :class:`vggspec.backends.Backend` to train. A backend whose framework
    has settings of its own also declares them as the class attribute ``training_settings`` (a frozen
    dataclass: :mod:`vggspec.training.backend_settings`)."""

    def seed(self, seed: int) -> None:
        """Seed the framework's global random generators (called before ``build``: weights, dropout). It is
        a training run's first call to the backend: the place to set what the framework must know before it
        starts (the keras and torch backends' memory settings for training)."""

    def trainer(self, model: Any, plan: Any, config: TrainConfig, settings: Any) -> Trainer:
        """A :class:`Trainer` for ``model`` (built from ``plan``, which has a classifier; weights already loaded).
        ``settings``: an instance of the backend's ``training_settings``, None when it declares none."""


def freeze_names(layer_names: Sequence[str], up_to: str) -> tuple[str, ...]:
    """The layer names from the first up to and including ``up_to`` (the ``freeze`` setting); ``"none"``
    freezes nothing."""
    names = list(layer_names)
    if up_to == "none":
        return ()
    if up_to not in names:
        raise VggspecError(
            f"freeze: expected none or a layer name ({names[0]} ... {names[-1]}), received {up_to!r}", setting="freeze"
        )
    return tuple(names[: names.index(up_to) + 1])
