"""vggspec's PyTorch backend. Importing this package does not import torch."""

from vggspec_torch.backend import TorchBackend

__all__ = ["TorchBackend"]
