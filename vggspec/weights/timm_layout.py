"""timm's VGG layout (``timm/vgg16.tv_in1k`` and its siblings on the Hub), mapped to torchvision's.

timm keeps torchvision's ``features.N.*`` keys but holds the two hidden dense layers as
convolutions over the last feature map (its ``ConvMlp``) and the classifier in a head:

- ``pre_logits.fc1.weight`` (out, C, H, W): a convolution as large as the map, which is
  torchvision's ``classifier.0.weight`` (out, C*H*W) reshaped, its columns in the same C,H,W
  order as torch's flatten (column ``c*H*W + h*W + w``);
- ``pre_logits.fc2.weight`` (out, in, 1, 1): ``classifier.3.weight`` (out, in);
- ``head.fc.weight`` (classes, in) and the biases: ``classifier.6`` as they are.

:func:`timm_to_torchvision` renames these keys to the plan's torchvision keys (its module
slots, so fc2 and the classifier are wherever the plan has them) and describes the two
convolutions with their dense shape; the reshape happens when the array is read, after
``fit_bundle`` has checked the shapes, so nothing is read here. A convolution whose shape is
not the plan's layer (another map size, another channel count) keeps its stored shape and is
refused by that check, naming the key. Both readers of torch-keyed files (``.pt``/``.pth`` and
``.safetensors``) go through :func:`vggspec.weights.torchvision.torch_to_stored`, which calls this.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

from vggspec.frameworks.torch_modules import module_slots
from vggspec.planner.layers import Dense
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import StoredArray

# timm's module of each of the plan's dense layers, in order: fc1, fc2, the classifier
TIMM_DENSE = ("pre_logits.fc1", "pre_logits.fc2", "head.fc")


def is_timm(keys: Mapping[str, object]) -> bool:
    """Whether a state dict is in timm's layout: it has a ``pre_logits.`` or ``head.fc.`` key."""
    return any(key.startswith(("pre_logits.", "head.fc.")) for key in keys)


def _dense_shape(layer: Dense) -> tuple[int, ...]:
    """The convolution timm stores for a hidden dense layer: (out, C, H, W) over the map it reads (fc1),
    else (out, in, 1, 1)."""
    if layer.reads_flattened:
        height, width, channels = layer.reads_flattened
        return (layer.units, channels, height, width)
    return (layer.units, layer.input_features, 1, 1)


def _as_dense(array: StoredArray, key: str, conv_shape: tuple[int, ...]) -> StoredArray:
    """A stored convolution described as the dense weight (out, in*H*W) it is, reshaped when read;
    one of another shape is kept as stored (the shape check refuses it)."""
    where = f"key {key!r}, timm's convolution {tuple(array.shape)}"
    if tuple(array.shape) != conv_shape:
        return StoredArray(array.shape, array.dtype, where, array.read)
    dense = (conv_shape[0], math.prod(conv_shape[1:]))
    return StoredArray(dense, array.dtype, where, lambda: array.read().reshape(dense))


def timm_to_torchvision(plan: Plan, state: Mapping[str, StoredArray]) -> dict[str, StoredArray]:
    """A timm-layout state dict under the plan's torchvision keys (a torchvision one is returned as it is).

    The plan's dense layers take timm's fc1, fc2 and head.fc in order; a plan without them (no top)
    leaves timm's keys as they are, for the caller to name as unused."""
    if not is_timm(state):
        return dict(state)
    dense = [layer for layer in plan.weighted_layers() if isinstance(layer, Dense)]
    if len(dense) != len(TIMM_DENSE):
        return dict(state)
    slots = module_slots(plan)
    renamed: dict[str, str] = {}  # timm key -> torchvision key
    shapes: dict[str, Optional[tuple[int, ...]]] = {}  # timm key -> its convolution's shape, None for a plain one
    for layer, module in zip(dense, TIMM_DENSE):
        for weight in ("weight", "bias"):
            key = f"{module}.{weight}"
            renamed[key] = f"{slots[layer.name].path}.{weight}"
            shapes[key] = _dense_shape(layer) if weight == "weight" and not layer.classifier else None
    mapped: dict[str, StoredArray] = {}
    for key, array in state.items():
        conv_shape = shapes.get(key)
        mapped[renamed.get(key, key)] = _as_dense(array, key, conv_shape) if conv_shape else array
    return mapped
