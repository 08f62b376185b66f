"""Which process of a distributed run this is, and a checksum to compare the ranks' parameters.

Each framework's launcher says it in the environment, and the core reads it there
(without importing a framework) to shard the data and to let rank 0 alone write files:

- ``torchrun`` (``python -m torch.distributed.run``) sets ``RANK`` and ``WORLD_SIZE``;
- TensorFlow's ``TF_CONFIG`` (JSON) lists the cluster's ``chief`` and ``worker`` addresses and names
  this process' ``task``; the chief (else worker 0) is rank 0, the workers follow in order;
- Keras' own ``KERAS_DISTRIBUTION_PROCESS_ID`` and ``KERAS_DISTRIBUTION_NUM_PROCESSES`` (with
  ``KERAS_DISTRIBUTION_JOB_ADDRESSES``), which ``keras.distribution.initialize`` reads.

The backend's trainer sets up the communication itself, and refuses a launcher it cannot join.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

import numpy as np

from vggspec.errors import BackendError, VggspecError
from vggspec.weights.bundle import WeightBundle

# batch-norm statistics are buffers, not parameters: each rank updates them from its own batches
STATISTICS = ("moving_mean", "moving_variance")


# each launcher's name and the environment variables of (rank, world size) it sets
TORCHRUN = "torchrun"
TF_CONFIG = "TF_CONFIG"
KERAS_DISTRIBUTION = "keras.distribution"
RANK_VARIABLES = {
    TORCHRUN: ("RANK", "WORLD_SIZE"),
    KERAS_DISTRIBUTION: ("KERAS_DISTRIBUTION_PROCESS_ID", "KERAS_DISTRIBUTION_NUM_PROCESSES"),
}


def launcher() -> Optional[str]:
    """The launcher whose variables are set (TORCHRUN, TF_CONFIG or KERAS_DISTRIBUTION), None for none."""
    if "RANK" in os.environ or "WORLD_SIZE" in os.environ:
        return TORCHRUN
    if os.environ.get("TF_CONFIG"):
        return TF_CONFIG
    if any(name in os.environ for name in RANK_VARIABLES[KERAS_DISTRIBUTION]):
        return KERAS_DISTRIBUTION
    return None


def _tf_config_rank(text: str) -> tuple[int, int]:
    """(rank, world_size) of the task that TF_CONFIG's JSON ``text`` names: the chief first, then the workers."""
    expected = 'TF_CONFIG: expected {"cluster": {"worker": [ADDRESS, ...]}, "task": {"type": "worker", "index": I}}'
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], task["index"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise VggspecError(f"{expected}, received {text[:200]!r}") from None
    members = {"chief": chiefs, "worker": workers}
    if len(chiefs) > 1 or kind not in members or isinstance(index, bool) or not isinstance(index, int):
        raise VggspecError(f"{expected} (at most one chief), received task {task!r} of cluster {cluster!r}")
    if not 0 <= index < len(members[kind]):
        raise VggspecError(f"TF_CONFIG: task {kind} {index} is not in the cluster, which has {len(members[kind])}")
    return (index if kind == "chief" else len(chiefs) + index), len(chiefs) + len(workers)


def process_rank() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment (:func:`launcher`); (0, 1) for a plain process."""
    source = launcher()
    if source is None:
        return 0, 1
    if source == TF_CONFIG:
        return _tf_config_rank(os.environ["TF_CONFIG"])
    rank_name, size_name = RANK_VARIABLES[source]
    try:
        rank, world_size = int(os.environ.get(rank_name, "0")), int(os.environ.get(size_name, "1"))
    except ValueError:
        raise VggspecError(
            f"{rank_name}/{size_name}: expected integers, received "
            f"{os.environ.get(rank_name)!r}/{os.environ.get(size_name)!r}"
        ) from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise VggspecError(
            f"{rank_name}/{size_name}: expected 0 <= {rank_name} < {size_name}, received {rank}/{world_size}"
        )
    return rank, world_size


def per_process_batch(global_batch: int) -> int:
    """The batch of each process of this run for a ``global_batch`` shared equally by all of them."""
    world_size = process_rank()[1]
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
        raise VggspecError(
            f"global_batch_size: expected a positive integer, received {global_batch!r}", setting="global_batch_size"
        )
    if global_batch % world_size:
        raise VggspecError(
            f"global_batch_size: expected a multiple of the run's {world_size} processes ({launcher()}), "
            f"received {global_batch}",
            setting="global_batch_size",
        )
    return global_batch // world_size


def launch_environment(source: str, addresses: list[str], index: int) -> dict[str, str]:
    """The variables that make a process worker ``index`` of a cluster at ``addresses`` ("host:port" each,
    the first coordinating) for the launcher ``source``, TF_CONFIG or KERAS_DISTRIBUTION (torchrun sets its own)."""
    if source == TF_CONFIG:
        task = {"type": "worker", "index": index}
        return {"TF_CONFIG": json.dumps({"cluster": {"worker": list(addresses)}, "task": task})}
    if source == KERAS_DISTRIBUTION:
        rank_name, size_name = RANK_VARIABLES[KERAS_DISTRIBUTION]
        addresses_text = ",".join(addresses)
        return {
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": addresses_text,
            size_name: str(len(addresses)),
            rank_name: str(index),
        }
    raise ValueError(f"launcher: expected {TF_CONFIG} or {KERAS_DISTRIBUTION}, received {source!r}")


def joined_rank(trainer: str, accepted: tuple[str, ...]) -> tuple[int, int]:
    """(rank, world_size) for a ``trainer`` (e.g. "keras on tensorflow") that can join the ``accepted``
    launchers only: a run of several processes started by another is refused in one line."""
    rank, world_size = process_rank()
    source = launcher()
    if world_size > 1 and source not in accepted:
        raise BackendError(
            f"{source}: expected {' or '.join(accepted)} to start the {world_size} processes of a {trainer} run, "
            f"received {source}'s settings (each framework joins the processes its own launcher starts)",
            setting="backend",
        )
    return rank, world_size


def parameters_checksum(bundle: WeightBundle) -> np.ndarray:
    """SHA-256 of every parameter's bytes (float32, layer order; batch-norm statistics left out),
    as four int64 words, so that ranks can all-gather and compare them."""
    digest = hashlib.sha256()
    for layer, weights in bundle.layers.items():
        for name, array in weights.items():
            if name in STATISTICS:
                continue
            digest.update(f"{layer}/{name}".encode())
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return np.frombuffer(digest.digest(), dtype=np.int64).copy()
