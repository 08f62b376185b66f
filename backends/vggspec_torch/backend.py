"""The PyTorch backend: compiles a plan to torchvision's VGG module tree.

Importing this module does not import torch; every method imports it when
called. Images given to the backend are NHWC float32 numpy arrays (as Keras
takes them); the network itself takes NCHW tensors, so the backend transposes.
Outputs come back channels last (NHWC for maps) so that both backends agree.
Layout transforms (OIHW, (out, in), fc1's C,H,W columns) live only in
:mod:`vggspec.weights.torchvision`.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterator, Mapping

import numpy as np

from vggspec.backends import install_hint, set_environment_defaults
from vggspec.fileio import atomic_path
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.torchvision import bundle_to_torch, torch_to_bundle
from vggspec_torch.settings import TorchSettings

# running statistics Keras counts as non-trainable weights (not num_batches_tracked)
COUNTED_BUFFERS = ("running_mean", "running_var")


@contextlib.contextmanager
def _inference(model: Any) -> Iterator[None]:
    """Eval mode and no autograd for the block; the model's previous mode is restored after it."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def model_device(model: Any) -> Any:
    """The device of the model's tensors (its first parameter's, else its first buffer's); a model with
    neither, a plan of only an input and pools, computes on the CPU."""
    import torch

    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _nchw_tensor(model: Any, images: np.ndarray) -> Any:
    """NHWC numpy -> NCHW float32 tensor on the model's device."""
    import torch

    device = model_device(model)
    array = np.ascontiguousarray(np.asarray(images, dtype=np.float32).transpose(0, 3, 1, 2))
    return torch.from_numpy(array).to(device)


# torch in a training process: tensors of 2 MB and more on transparent huge pages (torch's
# THP_MEM_ALLOC_ENABLE; the kernel's setting must be madvise or always). Each step allocates VGG16's fc1
# weight gradient (411 MB) anew: on 4 KB pages the kernel faults in and zeroes 100,000 of them, and the
# backward pass of the head took 272 ms on one thread, 129 ms on huge pages.
TRAINING_ENVIRONMENT = {"THP_MEM_ALLOC_ENABLE": "1"}


class TorchBackend:
    """vggspec's ``torch`` backend (see :class:`vggspec.backends.Backend`)."""

    name = "torch"
    requires = ("torch",)
    install = install_hint("torch")  # pip install "vggspec[torch]"
    save_suffix = ".pt"  # save writes a state dict under any name; .pt is the one vggspec reads
    training_settings = TorchSettings  # device, compile, channels_last, autocast: how torch computes a run

    def build(self, plan: Plan) -> Any:
        """A freshly initialised ``VGG`` nn.Module with torchvision's module paths; takes NCHW."""
        from vggspec_torch.network import build_network

        return build_network(plan)

    def count_params(self, model: Any) -> tuple[int, int]:
        """(trainable, non-trainable) as Keras counts them: frozen parameters and the BN running
        mean and variance are non-trainable; ``num_batches_tracked`` is not counted."""
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        buffers = sum(b.numel() for name, b in model.named_buffers() if name.rsplit(".", 1)[-1] in COUNTED_BUFFERS)
        return int(trainable), int(frozen + buffers)

    def get_weights(self, model: Any, plan: Plan) -> WeightBundle:
        """The model's arrays, copied, in the canonical layout."""
        state = {key: value.detach().cpu().numpy().copy() for key, value in model.state_dict().items()}
        return torch_to_bundle(plan, state, source="torch model")

    def set_weights(self, model: Any, plan: Plan, bundle: WeightBundle) -> None:
        """Copy a checked (possibly partial) bundle into the model; layers not in it are left alone."""
        import torch

        targets = model.state_dict()
        with torch.no_grad():
            for key, array in bundle_to_torch(plan, bundle).items():
                targets[key].copy_(torch.from_numpy(np.asarray(array)))

    def accelerate(self, model: Any) -> Any:
        """For inference: on CUDA (when available) in the channels-last memory format, and ``predict``
        then runs under bfloat16 autocast. On a CPU the model is returned as it is (fp32)."""
        import torch

        if torch.cuda.is_available():
            model = model.to("cuda", memory_format=torch.channels_last)
            model.vggspec_autocast = True
        return model

    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Outputs for NHWC float32 ``images`` in inference mode; maps come back NHWC (float32)."""
        import torch

        inputs = _nchw_tensor(model, images)
        fast = getattr(model, "vggspec_autocast", False)
        with _inference(model), torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=fast):
            if fast:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            outputs = model(inputs).float().cpu()
        return (outputs.permute(0, 2, 3, 1) if outputs.dim() == 4 else outputs).numpy().copy()

    def activations(self, model: Any, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every plan layer's output for NHWC ``images`` (inference mode), channels last."""
        from vggspec_torch.network import layer_outputs

        with _inference(model):
            outputs = layer_outputs(model, plan, _nchw_tensor(model, images))
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def extractor(self, model: Any, plan: Plan, outputs: Mapping[str, str], trainable: bool) -> Any:
        """An ``nn.Module`` around ``model`` whose call on NCHW images gives ``{key: output}`` (NCHW maps);
        frozen and in eval mode unless ``trainable`` (:class:`vggspec_torch.network.FeatureExtractor`)."""
        from vggspec_torch.network import FeatureExtractor

        return FeatureExtractor(model, plan, outputs, trainable)

    def save(self, model: Any, path: str) -> None:
        """Write the state dict (torchvision keys) with ``torch.save``; nothing half-written on failure."""
        import torch

        with atomic_path(path) as temporary:
            torch.save(model.state_dict(), temporary)

    def seed(self, seed: int) -> None:
        """Seed torch's global generator (``build``'s initialisation).

        The first call of a training run: before torch is imported, it also sets
        :data:`TRAINING_ENVIRONMENT` (a torch imported earlier in the process keeps its settings)."""
        set_environment_defaults(TRAINING_ENVIRONMENT)
        import torch

        torch.manual_seed(seed)

    def trainer(self, model: Any, plan: Plan, config: Any, settings: TorchSettings) -> Any:
        """A trainer for ``vggspec finetune``, DDP under torchrun (see :mod:`vggspec_torch.training`)."""
        from vggspec_torch.training import make_trainer

        return make_trainer(model, plan, config, settings)
