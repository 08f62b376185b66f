"""The torch backend's own training settings: how torch computes a run, which the Keras backend does not have.

Declared to the core as ``TorchBackend.training_settings`` (see
:mod:`vggspec.training.backend_settings`): each field is a setting with its default, and its
``help`` is what the command line's help says of the option that sets it. Importing this
module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class TorchSettings:
    """How the torch backend trains: on which device, compiled or not, in which memory format and precision."""

    device: Optional[str] = field(
        default=None, metadata={"help": "cpu, cuda or cuda:N", "default": "CUDA when available"}
    )
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    channels_last: bool = field(default=True, metadata={"help": "on CUDA, the channels-last (NHWC) memory format"})
    autocast: bool = field(default=True, metadata={"help": "on CUDA, bfloat16 autocast; off: float32"})
