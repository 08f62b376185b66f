"""The seeds of a run's random draws, all derived from its ``seed`` setting and the epoch, so that a
resumed run draws what a straight run does.

The data's order and augmentation come from ``numpy.random.default_rng((seed, epoch, ...))``
(:mod:`vggspec.training.batches`); each framework's dropout masks from :func:`dropout_seed`.
"""

from __future__ import annotations


def dropout_seed(seed: int, epoch: int, stream: int, *, bits: int) -> int:
    """The seed of ``epoch``'s dropout masks for one ``stream`` of them (what the backend varies them over:
    the rank of a torch process, the index of a Keras dropout layer), from 0 to 2**bits - 1 (the width its
    framework's generator takes). Python's hash of a tuple of ints is the same in every process."""
    return hash((seed, epoch, stream)) % 2**bits
