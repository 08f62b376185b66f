"""Training with PyTorch: the optimisation step and the checkpoint of vggspec's Trainer protocol.

The core's batches (NHWC float32, preprocessed) come through a ``DataLoader``
with ``workers`` processes, one batch per item (:mod:`vggspec_torch.loading`). The network is trained on
its logits (``VGG.forward(x, logits=True)`` leaves the classifier activation, a
softmax, out; ``cross_entropy`` folds it in); ``predict`` runs the whole network.

On CUDA the model and its inputs use the channels-last memory format and the
forward pass runs under bfloat16 autocast (the backend's settings ``channels_last``
and ``autocast`` turn them off: :class:`~vggspec_torch.settings.TorchSettings`).
Under a launcher that sets ``WORLD_SIZE`` > 1 (``torchrun``) the process joins the
run's group and the model is wrapped in ``DistributedDataParallel``
(:mod:`vggspec_torch.distributed`). Frozen layers have ``requires_grad`` off, and
frozen batch-norm layers stay in eval mode (as Keras runs a non-trainable
BatchNormalization in inference mode).

Checkpoints are ``torch.save`` files: ``{"model": state dict (torchvision
keys), "optimizer": ..., "vggspec_state" (CHECKPOINT_STATE): JSON text}``; ``vggspec``
reads the weights of such a file like any ``.pt`` state dict.

With ``config.cache_features`` (one process) the network is split after the last frozen
layer (:func:`split_network`): ``frozen_features`` runs the frozen part, and the epochs
train and validate the rest, a ``VGG`` sharing the network's modules, on the cached
features; the checkpoints are still the whole network's. Adam and SGD use torch's fused
implementation where it has one: on a CPU, the per-tensor loop's update of VGG16's 119M head
parameters would be most of an epoch on cached features.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from typing import Any, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vggspec.errors import BackendError
from vggspec.fileio import atomic_path
from vggspec.frameworks.torch_modules import FEATURES
from vggspec.planner.layers import Dense, Flatten
from vggspec.planner.lower import Plan
from vggspec.training.distributed import TORCHRUN, joined_rank
from vggspec.training.metrics import RunningMeans
from vggspec.training.protocol import CHECKPOINT_STATE, BatchSource, Progress, TrainConfig
from vggspec.training.seeds import dropout_seed
from vggspec_torch.distributed import ProcessGroup
from vggspec_torch.loading import loaded_batches
from vggspec_torch.network import VGG
from vggspec_torch.settings import TorchSettings

SUFFIX = ".pt"
# the optimizer of each of vggspec's names (TrainConfig.optimizer); they take TrainConfig.optimizer_options()
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def pick_device(name: Optional[str]) -> torch.device:
    """The device ``name``, else CUDA when available; a CUDA device without index takes ``LOCAL_RANK``."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise BackendError(f"device: expected cpu, cuda or cuda:N, received {name!r}", setting="device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(
            f"device: expected a device this machine has, received {name!r} "
            "(torch.cuda.is_available() is False: no CUDA device)",
            setting="device",
        )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def freeze(net: VGG, plan: Plan, names: tuple[str, ...]) -> list[nn.Module]:
    """Turn off ``requires_grad`` of the frozen layers' parameters; return their batch-norm modules."""
    frozen_norms: list[nn.Module] = []
    for layer in plan.weighted_layers():
        if layer.name in names:
            module = net.get_submodule(net.slots[layer.name].path)
            module.requires_grad_(False)
            if isinstance(module, nn.BatchNorm2d):
                frozen_norms.append(module)
    return frozen_norms


class KerasFlattenOrder(nn.Module):
    """(N, H·W·C) vectors in Keras' H,W,C flatten order -> (N, C, H, W) maps, which ``VGG.forward`` flattens
    in torch's C,H,W order for the Linear that reads them."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape).permute(0, 3, 1, 2)


def split_network(net: VGG, plan: Plan, layer: str) -> tuple[nn.Module, VGG]:
    """(the modules up to and including plan layer ``layer``, a ``VGG`` of the modules after it), sharing
    ``net``'s modules. The first gives ``layer``'s output in torch's layout (NCHW maps; for ``flatten`` the
    (N, C, H, W) map before it); the second takes it in the plan's (see ``TorchTrainer._inputs``)."""
    found = plan.layer(layer)
    slot = net.slots.get(layer)
    if not net.has_top:
        raise BackendError(f"plan {plan.name}: expected a top to train on cached features, received none")
    if slot is not None and slot.sequence == FEATURES:
        end = slot.first + slot.count
        tail = VGG(nn.Sequential(*list(net.features)[end:]), avgpool=net.avgpool, classifier=net.classifier)
        frozen: nn.Module = nn.Sequential(*list(net.features)[:end])
    elif isinstance(found, Flatten):
        tail = VGG(nn.Sequential(), avgpool=KerasFlattenOrder(found.input_shape), classifier=net.classifier)
        frozen = nn.Sequential(net.features, net.avgpool)
    elif slot is not None and isinstance(found, Dense) and not found.classifier:
        end = slot.first + 2  # the Linear and its activation; the Dropout after them is the next plan layer's
        modules = list(net.classifier)
        tail = VGG(nn.Sequential(), avgpool=nn.Identity(), classifier=nn.Sequential(*modules[end:]))
        frozen = nn.Sequential(net.features, net.avgpool, nn.Flatten(1), *modules[:end])
    else:
        raise BackendError(
            f"plan {plan.name}: cannot train on the outputs of {layer} (a {found.type_name}): expected a layer "
            "of the convolutional part, flatten or a hidden dense layer"
        )
    tail.classifier_activation = net.classifier_activation
    return frozen, tail


def make_optimizer(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``parameters``: torch's fused kernel where this torch has one for
    their device, else its default implementation."""

    def make(fused: Optional[bool]) -> torch.optim.Optimizer:
        optimizer: Any = OPTIMIZERS[config.optimizer]
        return optimizer(parameters, lr=config.learning_rate, fused=fused, **config.optimizer_options())

    try:
        return make(True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch
        return make(None)


class TorchTrainer:
    """vggspec's :class:`~vggspec.training.protocol.Trainer` for a torch ``VGG`` network (and
    :class:`~vggspec.training.protocol.TrainsOnFeatures`)."""

    def __init__(self, model: nn.Module, plan: Plan, config: TrainConfig, settings: TorchSettings):
        self.config = config
        self.settings = settings
        self.classes = plan.output_shape[-1]
        self.rank, self.world_size = joined_rank("torch", (TORCHRUN,))
        self.device = pick_device(settings.device)
        self.cuda = self.device.type == "cuda"
        self.channels_last = self.cuda and settings.channels_last
        self.autocast = self.cuda and settings.autocast
        self.group = ProcessGroup(self.device, self.world_size) if self.world_size > 1 else None
        self.closed = False
        if self.cuda:
            torch.cuda.set_device(self.device)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        # Module.to takes memory_format (it goes to Tensor.to), which torch's overloads leave out
        self.net = model.to(self.device, memory_format=memory_format)  # type: ignore[call-overload]
        self.frozen_norms = freeze(self.net, plan, config.freeze)
        self.optimizer = make_optimizer([p for p in self.net.parameters() if p.requires_grad], config)
        # with cached features: the frozen part (frozen_features) and the part trained on its outputs
        self.frozen_part: nn.Module = nn.Identity()
        self.trained: nn.Module = self.net  # what train_epoch and predict run
        if config.cache_features:  # in one process (vggspec.training.feature_cache.check_cacheable)
            self.frozen_part, self.trained = split_network(self.net, plan, config.freeze[-1])
        self.features_flat = config.cache_features and isinstance(plan.layer(config.freeze[-1]), Flatten)
        # called with logits=True (the loss takes logits): the network, DDP around it, or torch.compile's wrapper
        self.step_model: Any = self.trained
        if self.group is not None:
            self.group.join()
            try:
                self.step_model = self.group.wrap(self.step_model)
            except BaseException:
                self.close()  # the caller gets no trainer to close
                raise
        if settings.compile:
            self.step_model = torch.compile(self.step_model)

    def _batches(self, data: BatchSource) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # cached features are read from a memory-mapped file, nothing to spread over worker processes
        workers = 0 if self.config.cache_features else self.config.workers
        return loaded_batches(data, workers, pin_memory=self.cuda, seed=self.config.seed)

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        """NHWC batch (images, or cached feature maps) -> NCHW tensor on the device (channels-last memory
        when enabled); cached feature vectors (N, F) as they are."""
        if images.dim() != 4:
            return images.to(self.device, non_blocking=True)
        x = images.permute(0, 3, 1, 2).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def frozen_features(self, images: np.ndarray) -> np.ndarray:
        """The last frozen layer's outputs for NHWC ``images``, in the plan's layout (NHWC maps; flatten's
        vectors in Keras' H,W,C order), float32, in inference mode."""
        self.net.eval()
        with torch.no_grad(), self._precision():
            x = self.frozen_part(self._inputs(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))))
        x = x.float().cpu()
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        if self.features_flat:
            x = x.reshape(x.shape[0], -1)
        return x.contiguous().numpy()

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            yield

    def train_epoch(self, data: BatchSource, epoch: int, progress: Progress) -> dict[str, float]:
        torch.manual_seed(dropout_seed(self.config.seed, epoch, self.rank, bits=63))
        self.net.train()
        for module in self.frozen_norms:
            module.eval()
        means = RunningMeans()
        for images, labels in self._batches(data):
            x, y = self._inputs(images), labels.to(self.device, non_blocking=True)
            with self._precision():
                logits = self.step_model(x, logits=True)
            loss = F.cross_entropy(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            means.add(float(loss.detach()), int((logits.detach().argmax(dim=1) == y).sum()), len(y))
            progress.step(means.loss, means.accuracy)
        return means.result()

    def predict(self, data: BatchSource) -> np.ndarray:
        self.net.eval()
        outputs = []
        with torch.no_grad(), self._precision():
            for images, _ in self._batches(data):
                outputs.append(self.trained(self._inputs(images)).float().cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, self.classes), dtype=np.float32)

    def save_checkpoint(self, path: str, state: dict[str, Any]) -> None:
        payload = {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            CHECKPOINT_STATE: json.dumps(state),
        }
        with atomic_path(path, suffix=SUFFIX) as temporary:
            torch.save(payload, temporary)

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        payload = torch.load(path, map_location=self.device, weights_only=True)
        self.net.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        return json.loads(payload[CHECKPOINT_STATE])

    def weights_file_suffix(self) -> str:
        return SUFFIX

    def all_gather(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)[None] if self.group is None else self.group.all_gather(values)

    def close(self) -> None:
        """Leave the process group, in an order that cannot deadlock (:meth:`ProcessGroup.close`); safe to
        call again."""
        if self.closed:
            return
        self.closed = True
        if self.group is not None:
            self.group.close(self._drop_wrapper)

    def _drop_wrapper(self) -> None:
        """Let the DDP module (and torch.compile's graphs of it) go; the network stays."""
        wrapped, self.step_model = self.step_model is not self.trained, self.net
        if wrapped:
            if self.settings.compile:
                torch.compiler.reset()  # compiled graphs hold the DDP module
            gc.collect()  # the DDP module and its reducer, should they sit in a reference cycle


def make_trainer(model: nn.Module, plan: Plan, config: TrainConfig, settings: TorchSettings) -> TorchTrainer:
    return TorchTrainer(model, plan, config, settings)
