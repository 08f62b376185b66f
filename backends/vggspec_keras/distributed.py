"""A Keras trainer's part in a distributed run, with the engine each Keras framework's users run:

- on TensorFlow, ``tf.distribute.MultiWorkerMirroredStrategy`` across the processes that ``TF_CONFIG``
  lists (one or more machines), as TensorFlow documents it; and in one process on a machine with several
  GPUs, ``tf.distribute.MirroredStrategy`` over them (or whichever strategy the caller has made
  TensorFlow's default): ``fit`` then splits each of the process' batches among the devices;
- on JAX, ``keras.distribution.DataParallel`` over the devices of the processes that
  ``keras.distribution.initialize`` joins (``jax.distributed``), from Keras' ``KERAS_DISTRIBUTION_*``
  variables (on CPUs, JAX's collectives then go over gloo).

:func:`join_workers` joins the processes before anything runs on the framework (the backend's ``seed``, a
run's first call), so that the model is built distributed: its variables are replicated, and each step's
gradients are averaged over the global batch. Each process feeds its own batches (its shard of the core's
data) to ``train_on_batch``; ``fit`` would shard a dataset a second time.

Keras 3.15 needs two things here. On TensorFlow its train step reduces the scalar loss and metrics with
``strategy.reduce("MEAN", value, axis=0)``, which fails on a scalar (tensorflow/tensorflow#72388): the
logs are made vectors of one (:func:`vector_logs`). And ``save_weights`` runs a collective on both
frameworks, so every process must save when the chief does (the trainer's ``saves_on_every_rank``).

When a process dies, the others' collectives fail (TensorFlow's coordination service misses its
heartbeats, gloo under JAX loses its connection): :func:`peers_lost` turns that into one line. When the
process that coordinates JAX's distributed service dies, that service ends the others itself (a fatal
error of its own, exit by SIGABRT).
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator

import keras
import numpy as np

from vggspec.errors import BackendError
from vggspec.training.distributed import KERAS_DISTRIBUTION, TF_CONFIG, joined_rank

# JAX's distributed service: a process whose heartbeats stop this long is dead, and one ending waits this
# long for the others at exit (JAX's defaults, 100 s and 300 s, would keep a survivor waiting for minutes)
JAX_HEARTBEAT_TIMEOUT_S = 30
JAX_SHUTDOWN_TIMEOUT_S = 20
# the launcher that starts the processes of a run on each Keras framework that can run one
LAUNCHERS = {"tensorflow": TF_CONFIG, "jax": KERAS_DISTRIBUTION}


def joined() -> tuple[int, int]:
    """(rank, world_size) of this process; a run of several started by another launcher than the Keras
    framework's (LAUNCHERS), or on a framework without one, is refused in one line."""
    framework = keras.backend.backend()
    accepted = (LAUNCHERS[framework],) if framework in LAUNCHERS else ()
    return joined_rank(f"keras on {framework}", accepted)


def join_workers() -> None:
    """Join the run's other processes when there are any; call before anything runs on the framework."""
    rank, world_size = joined()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if world_size > 1:
            tf.distribute.experimental_set_strategy(tf.distribute.MultiWorkerMirroredStrategy())
        elif not tf.distribute.has_strategy() and len(tf.config.list_physical_devices("GPU")) > 1:
            tf.distribute.experimental_set_strategy(tf.distribute.MirroredStrategy())  # every local GPU
        return
    if world_size == 1:
        return
    import jax

    # without it, JAX runs no collective between the CPU devices of two processes (GPUs use their own)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # what keras.distribution.initialize() does with these variables, with shorter waits for a dead process
    jax.distributed.initialize(
        coordinator_address=os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",")[0] or None,
        num_processes=world_size,
        process_id=rank,
        heartbeat_timeout_seconds=JAX_HEARTBEAT_TIMEOUT_S,
        shutdown_timeout_seconds=JAX_SHUTDOWN_TIMEOUT_S,
    )
    keras.distribution.set_distribution(keras.distribution.DataParallel())


def mirrored() -> bool:
    """Whether this one process trains on several local devices: Keras on TensorFlow under a strategy made by
    :func:`join_workers` (MirroredStrategy over the GPUs) or by the caller (``experimental_set_strategy``)."""
    if keras.backend.backend() != "tensorflow" or joined()[1] > 1:
        return False
    import tensorflow as tf

    return bool(tf.distribute.has_strategy())


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
    values = np.ascontiguousarray(values)
    with peers_lost():
        if keras.backend.backend() == "jax":
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(values, tiled=False))
        gathered = _gather_all()(values)
        return np.asarray(strategy().experimental_local_results(gathered)[0])


def vector_logs(model: keras.Model) -> None:
    """On TensorFlow, make ``model``'s train step return each log as a vector of one, which Keras then
    averages over the processes (tensorflow/tensorflow#72388: its reduction of a scalar fails)."""
    if keras.backend.backend() != "tensorflow":
        return
    step: Callable[[Any], dict[str, Any]] = model.train_step

    def train_step(data: Any) -> dict[str, Any]:
        return {name: keras.ops.reshape(value, (1,)) for name, value in step(data).items()}

    model.train_step = train_step  # what Keras' train function calls


@contextlib.contextmanager
def peers_lost() -> Iterator[None]:
    """A collective that failed because another process stopped (it died, or failed) becomes one line (when
    the coordinating process died, JAX's distributed service ends this one itself); nothing in one process."""
    rank, world_size = joined()
    if world_size == 1:
        yield
        return
    framework = keras.backend.backend()
    if framework == "tensorflow":
        import tensorflow as tf

        lost: tuple[type[BaseException], ...] = (tf.errors.UnavailableError, tf.errors.AbortedError)
    else:
        import jax

        lost = (jax.errors.JaxRuntimeError,)
    try:
        yield
    except lost as error:
        reason = " ".join(str(getattr(error, "message", error)).split())[:300]
        raise BackendError(
            f"{LAUNCHERS[framework]}: expected all {world_size} processes of the run to go on, received an error "
            f"in process {rank} when another stopped ({reason})"
        ) from None
