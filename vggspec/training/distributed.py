"""Which process of a distributed run this is, and a checksum to compare the ranks' parameters.

Launchers such as ``torchrun`` (``python -m torch.distributed.run``) set
``RANK`` and ``WORLD_SIZE`` in each process' environment; the core reads them
(without importing a framework) to shard the data and to let rank 0 alone
write files. The backend's trainer sets up the communication itself.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from vggspec.errors import VggspecError
from vggspec.weights.bundle import WeightBundle

# batch-norm statistics are buffers, not parameters: each rank updates them from its own batches
STATISTICS = ("moving_mean", "moving_variance")


def process_rank() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment; (0, 1) for a plain process."""
    try:
        rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise VggspecError(
            f"RANK/WORLD_SIZE: expected integers, received {os.environ.get('RANK')!r}/{os.environ.get('WORLD_SIZE')!r}"
        ) from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise VggspecError(f"RANK/WORLD_SIZE: expected 0 <= RANK < WORLD_SIZE, received {rank}/{world_size}")
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
