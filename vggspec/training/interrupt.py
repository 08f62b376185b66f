"""Ctrl-C while training: stop at the next batch, from a place where stopping is safe.

Python raises KeyboardInterrupt wherever the main thread happens to be; inside a
finalizer (a framework object's ``__del__`` run by the garbage collector) the
exception is printed as "Exception ignored" and lost, and training goes on
(seen with TensorFlow's functions). So the first SIGINT only sets a flag, which
the loop checks after every batch and between epochs; the finished epochs are
already committed to the run folder, and a resumed run
(:func:`~vggspec.training.finetune.resume_finetune`) continues from them. A
second Ctrl-C gets Python's usual handler back and stops at once.

A terminal's Ctrl-C reaches every process of the group, the data-loading workers a framework
forked too: they inherit the handler, which acts in the process that installed it only (the
workers go on until the training process stops them), so the line is printed once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


class StopOnInterrupt:
    """``with StopOnInterrupt() as stop: ... stop.check()`` raises KeyboardInterrupt once Ctrl-C was pressed."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None
        self.pid = os.getpid()

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.pid:  # a forked worker: the training process decides
            return
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)
        print("\ninterrupt: stopping after this batch (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, self.previous)
