"""The progress bar of one epoch (tqdm on stderr), shown by rank 0 only."""

from __future__ import annotations

import sys
from typing import Callable

from tqdm import tqdm


class EpochBar:
    """``step(loss, accuracy)`` after each batch; the bar shows the epoch's running means.

    ``step`` is also where a requested stop (:mod:`vggspec.training.interrupt`) takes effect.
    """

    def __init__(
        self, batches: int, epoch: int, epochs: int, enabled: bool = True, check: Callable[[], None] = lambda: None
    ):
        self.check = check  # raises KeyboardInterrupt when the run should stop (after this batch)
        self.bar = tqdm(
            total=batches,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
            leave=True,
        )

    def step(self, loss: float, accuracy: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", accuracy=f"{accuracy:.4f}", refresh=False)
        self.bar.update(1)
        self.check()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> EpochBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
