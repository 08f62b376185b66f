"""A Keras trainer's part in a distributed run on TensorFlow: ``tf.distribute.MultiWorkerMirroredStrategy``
across the processes that ``TF_CONFIG`` lists (one or more machines), as TensorFlow documents it.

:func:`join_workers` makes the strategy TensorFlow's default before anything runs on TensorFlow (the
backend's ``seed``, a run's first call), so that the model is built in its scope: its variables are
mirrored, and Keras' optimizer sums each step's gradients over the processes (each process' loss is
divided by their number: the mean of the global batch). Each process feeds its own batches (its shard
of the core's data) to ``train_on_batch``; ``fit`` would shard a dataset a second time.

Two things of Keras 3.15 under this strategy are worked around here: its train step reduces the scalar
loss and metrics with ``strategy.reduce("MEAN", value, axis=0)``, which fails on a scalar
(tensorflow/tensorflow#72388), so the logs are made vectors of one (:func:`vector_logs`); and
``save_weights`` runs a collective, so every process must save when the chief does (the trainer's
``saves_on_every_rank``). When a process dies, TensorFlow's coordination service stops getting its
heartbeats and aborts the others' collectives: :func:`peers_lost` turns that into one line.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

import keras
import numpy as np

from vggspec.errors import BackendError
from vggspec.training.distributed import TF_CONFIG, joined_rank

TRAINER = "keras on tensorflow"


def joined() -> tuple[int, int]:
    """(rank, world_size) of this process; a run of several started by another launcher than TF_CONFIG, or
    on another Keras framework, is refused in one line."""
    framework = keras.backend.backend()
    if framework != "tensorflow":
        rank, world_size = joined_rank(f"keras on {framework}", ())
        return rank, world_size
    return joined_rank(TRAINER, (TF_CONFIG,))


def join_workers() -> None:
    """Make MultiWorkerMirroredStrategy (from TF_CONFIG) TensorFlow's default strategy when this process is
    one of several; call before anything runs on TensorFlow."""
    if joined()[1] == 1:
        return
    import tensorflow as tf

    tf.distribute.experimental_set_strategy(tf.distribute.MultiWorkerMirroredStrategy())


def strategy() -> Any:
    """TensorFlow's default strategy (made by :func:`join_workers`)."""
    import tensorflow as tf

    return tf.distribute.get_strategy()


@functools.cache
def _gather_all() -> Callable[[Any], Any]:
    """One graph function (made once: a new one would be traced on every call) that stacks a tensor of
    every process on a new first axis; the strategy's collectives run best (and without a warning) in a graph."""
    import tensorflow as tf

    def gather(value: Any) -> Any:
        return tf.distribute.get_replica_context().all_gather(value[None], axis=0)

    return tf.function(lambda value: strategy().run(gather, args=(value,)), reduce_retracing=True)


def all_gather(values: np.ndarray) -> np.ndarray:
    """``values`` of every process stacked on a new first axis, in rank order (a collective)."""
    with peers_lost():
        gathered = _gather_all()(np.ascontiguousarray(values))
        return np.asarray(strategy().experimental_local_results(gathered)[0])


def vector_logs(model: keras.Model) -> None:
    """Make ``model``'s train step return each log as a vector of one, which Keras then averages over the
    processes (tensorflow/tensorflow#72388: its reduction of a scalar fails under this strategy)."""
    step: Callable[[Any], dict[str, Any]] = model.train_step

    def train_step(data: Any) -> dict[str, Any]:
        return {name: keras.ops.reshape(value, (1,)) for name, value in step(data).items()}

    model.train_step = train_step  # what Keras' train function calls


@contextlib.contextmanager
def peers_lost() -> Iterator[None]:
    """A collective aborted because another process stopped (it died, or failed) becomes one line."""
    import tensorflow as tf

    rank, world_size = joined()
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError) as error:
        reason = " ".join(str(error.message).split())[:300]
        raise BackendError(
            f"TF_CONFIG: expected all {world_size} processes of the run to go on, received an error in process "
            f"{rank} when another stopped ({reason})"
        ) from None
