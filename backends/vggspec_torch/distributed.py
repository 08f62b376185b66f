"""A torch trainer's part in a distributed run: the process group, the DistributedDataParallel wrapper,
all-gathers, and a teardown that cannot deadlock.

Under a launcher that sets ``WORLD_SIZE`` > 1 (``torchrun``) each process joins the group (NCCL on GPUs,
one per ``LOCAL_RANK``; gloo on CPUs) unless the caller has made it already, and the trained network is
wrapped in ``DistributedDataParallel``, which averages the gradients over the ranks.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


class ProcessGroup:
    """This process' membership of the run's group: :meth:`join`, :meth:`wrap`, :meth:`all_gather`, :meth:`close`."""

    def __init__(self, device: torch.device, world_size: int):
        self.device = device
        self.world_size = world_size
        self.owns_group = False  # made by join (and so destroyed by close)
        # (work handle, tensors) of every collective started here, kept until the group is gone
        self.collectives: list[tuple[Any, ...]] = []

    def join(self) -> None:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.owns_group = True

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (called as ``model`` is)."""
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def all_gather(self, values: np.ndarray) -> np.ndarray:
        """``values`` of every rank stacked on a new first axis."""
        tensor = torch.from_numpy(np.ascontiguousarray(values)).to(self.device)
        gathered = [torch.empty_like(tensor) for _ in range(self.world_size)]
        work = dist.all_gather(gathered, tensor, async_op=True)
        work.wait()
        self.collectives.append((work, tensor, gathered))  # released by close(), after the group
        return torch.stack(gathered).cpu().numpy()

    def close(self, drop_wrapper: Callable[[], None]) -> None:
        """Tear the group down so that no rank can hang at exit; ``drop_wrapper`` lets the DDP wrapper go.

        A gloo worker thread finishes a collective after ``wait()`` returns, and dropping
        a Work that holds tensors made in Python takes the GIL (torch hands the tensors'
        Python objects back). The group's destructor joins those threads: if it runs
        while the main thread holds the GIL, for instance when the DDP reducer frees the
        group's last reference, a worker still dropping a Work waits for the GIL forever.
        Hence the order: (1) a barrier, so every rank is past its last collective;
        (2) the DDP wrapper goes while the group is still registered, so its reducer
        never holds the last reference; (3) the group is destroyed, its last reference
        being a Python ProcessGroup, whose destructor joins the workers with the GIL
        released; (4) only then the Work handles kept by ``all_gather`` (so no worker
        ever dropped one last) are freed, here, on the main thread.
        Called while an exception propagates (this rank failed), the barrier is skipped:
        the other ranks may be dead or in another collective; torchrun stops them once
        this rank exits with an error.
        """
        failed = sys.exc_info()[0] is not None
        try:
            if self.owns_group and not failed and dist.is_initialized():
                dist.barrier()
        finally:
            drop_wrapper()
            if self.owns_group and dist.is_initialized():
                group = dist.group.WORLD
                dist.destroy_process_group()
                del group  # the last reference: ~ProcessGroupGloo joins its threads here, GIL released
            self.owns_group = False
            self.collectives.clear()
