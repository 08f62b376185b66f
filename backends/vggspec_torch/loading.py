"""The core's batches through a torch ``DataLoader``: ``workers`` processes prepare them ahead, one batch per item."""

from __future__ import annotations

from typing import Iterator, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vggspec.errors import VggspecError
from vggspec.training.protocol import BatchSource


class BatchDataset(Dataset):
    """Item ``i`` is the core's batch ``i`` as tensors: (images NHWC float32, labels int64).

    A :class:`VggspecError` of the core's pipeline (an image that cannot be decoded) is
    returned as the item instead of raised: a DataLoader worker process would hand it
    over re-made from the text of its traceback; :func:`checked_batches` raises it whole.
    """

    def __init__(self, source: BatchSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Union[tuple[torch.Tensor, torch.Tensor], VggspecError]:
        try:
            images, labels = self.source.batch(index)
        except VggspecError as error:
            return error
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.asarray(labels, dtype=np.int64))


def checked_batches(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches; an error a worker returned (see :class:`BatchDataset`) is raised here."""
    for item in loader:
        if isinstance(item, VggspecError):
            raise item
        yield item


def loaded_batches(
    data: BatchSource, workers: int, *, pin_memory: bool, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``data``'s batches in order as tensors, prepared by ``workers`` processes (0: in this one)."""
    # its own generator: the workers' seeds must not consume the global one (dropout masks)
    loader = DataLoader(
        BatchDataset(data),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )
    return checked_batches(loader)
