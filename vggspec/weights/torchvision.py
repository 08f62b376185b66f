"""torchvision's VGG layout: its state-dict keys, and its arrays to and from the canonical layout.

Keys. A weight's key is its module's path in torchvision's VGG and the parameter's name there
(``features.0.weight``, ``features.1.running_var``): the module slots come from the torch table
(:func:`vggspec.frameworks.torch_modules.module_slots`), from which the torch backend builds its
network and the code generator writes its file, so the ``.pt`` reader, the torchvision-keyed
``.safetensors`` reader and the torch network name arrays alike.

Arrays. Conv weight OIHW; linear weight (out, in); and the ``Linear`` that reads the
flattened map has its columns in torch's C,H,W flatten order (torch flattens NCHW), where the
canonical rows are in Keras' H,W,C order. Batch norm: ``weight``, ``bias``, ``running_mean``,
``running_var`` (and ``num_batches_tracked``, written as 0). Each array kind has one
permutation (:class:`Reorder`); its inverse is derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from vggspec.errors import WeightsError
from vggspec.frameworks.torch_modules import ModuleSlots, module_slots
from vggspec.planner.layers import BatchNormalization, Conv2D, Dense, PlanLayer, Shape
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import StoredArray, StoredBundle, WeightBundle
from vggspec.weights.fit import fit_bundle
from vggspec.weights.timm_layout import timm_to_torchvision

TORCH_WEIGHT_NAMES = {"kernel": "weight", "bias": "bias"}
TORCH_BATCH_NORM_NAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def torch_key(slots: ModuleSlots, layer: PlanLayer, weight: str) -> str:
    """The state-dict key of one canonical weight: ``features.0.weight``, ``features.1.running_var``."""
    names = TORCH_BATCH_NORM_NAMES if isinstance(layer, BatchNormalization) else TORCH_WEIGHT_NAMES
    return f"{slots.path}.{names[weight]}"


@dataclass(frozen=True)
class Reorder:
    """One array kind, canonical -> torch: view the canonical array as ``view``, move its axes by
    ``axes``, reshape to the torch shape. ``from_torch`` runs the same steps backwards with the
    inverse permutation. ``shape_axes`` maps a shape alone (the view's extra split does not change it)."""

    canonical_shape: Shape
    view: Shape
    axes: tuple[int, ...]
    shape_axes: tuple[int, ...]
    order: str  # torch's order in words, for messages

    @property
    def torch_shape(self) -> Shape:
        return tuple(self.canonical_shape[i] for i in self.shape_axes)

    def to_torch(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.reshape(self.view).transpose(self.axes).reshape(self.torch_shape))

    def from_torch(self, array: np.ndarray) -> np.ndarray:
        moved = tuple(self.view[i] for i in self.axes)
        inverse = tuple(int(i) for i in np.argsort(self.axes))
        return np.ascontiguousarray(array.reshape(moved).transpose(inverse).reshape(self.canonical_shape))

    def canonical_of(self, torch_shape: Shape) -> Shape:
        """The canonical shape of a torch array of ``torch_shape`` (a rank that does not fit is kept as it is)."""
        if len(torch_shape) != len(self.shape_axes):
            return torch_shape
        return tuple(torch_shape[i] for i in np.argsort(self.shape_axes))


def reorder(layer: PlanLayer, weight: str) -> Optional[Reorder]:
    """The permutation of one weight between the layouts; None where both are the same."""
    if weight != "kernel":
        return None
    if isinstance(layer, Conv2D):
        shape = dict(layer.weights)["kernel"]  # (kh, kw, in, out) -> (out, in, kh, kw)
        return Reorder(shape, shape, (3, 2, 0, 1), (3, 2, 0, 1), "torch's OIHW")
    if isinstance(layer, Dense):
        shape = dict(layer.weights)["kernel"]  # (in, out) -> (out, in); fc1's rows (h, w, c) -> columns (c, h, w)
        view = (*layer.reads_flattened, layer.units) if layer.reads_flattened else shape
        axes = (3, 2, 0, 1) if layer.reads_flattened else (1, 0)
        return Reorder(shape, view, axes, (1, 0), "torch's (out, in)")
    return None


def bundle_to_torch(plan: Plan, bundle: WeightBundle) -> dict[str, np.ndarray]:
    """A checked bundle -> a torchvision state dict of numpy arrays (``features.0.weight``, ...);
    layers the bundle lacks are left out."""
    slots = module_slots(plan)
    state: dict[str, np.ndarray] = {}
    for layer in plan.weighted_layers():
        if layer.name not in bundle.layers:
            continue
        for weight, array in bundle.layers[layer.name].items():
            change = reorder(layer, weight)
            state[torch_key(slots[layer.name], layer, weight)] = change.to_torch(array) if change else array
        if isinstance(layer, BatchNormalization):
            state[f"{slots[layer.name].path}.num_batches_tracked"] = np.zeros((), dtype=np.int64)
    return state


def _from_torch(layer: PlanLayer, weight: str, key: str, array: StoredArray) -> StoredArray:
    """A stored torch array described in the canonical layout; its data is transformed when read."""
    change = reorder(layer, weight)
    where = f"{array.stored or f'key {key!r}'} of shape {array.shape}" + (f", {change.order}" if change else "")
    if change is None:
        return StoredArray(array.shape, array.dtype, where, array.read)
    if array.shape != change.torch_shape:  # described only: fit_bundle refuses it before any read
        return StoredArray(change.canonical_of(array.shape), array.dtype, where, array.read, transposed=True)
    return StoredArray(
        change.canonical_shape, array.dtype, where, lambda: change.from_torch(array.read()), transposed=True
    )


def torch_to_stored(plan: Plan, state: Mapping[str, StoredArray], source: str = "") -> StoredBundle:
    """A torchvision state dict of a file -> the canonical layout, by the plan's module slots; shapes
    are mapped now, data when it is read (after ``fit_bundle``). A missing key is refused; the keys of
    no weight of the plan are the bundle's ``extra`` (batch norm's ``num_batches_tracked`` apart: the
    canonical layout has no counter, and torch's writer sets it to 0). A state dict in timm's layout
    (``pre_logits.fc1``, ``head.fc``) is first renamed to torchvision's (:mod:`.timm_layout`)."""
    state = timm_to_torchvision(plan, state)
    slots = module_slots(plan)
    bundle = StoredBundle(source=source)
    used: set[str] = set()
    for layer in plan.weighted_layers():
        weights = {}
        for weight, _ in layer.weights:
            key = torch_key(slots[layer.name], layer, weight)
            if key not in state:
                raise WeightsError(
                    f"{source}: layer {layer.name}: expected the key {key!r}, received a state dict without it"
                )
            weights[weight] = _from_torch(layer, weight, key, state[key])
            used.add(key)
        if isinstance(layer, BatchNormalization):
            used.add(f"{slots[layer.name].path}.num_batches_tracked")
        bundle.layers[layer.name] = weights
    bundle.extra = tuple(key for key in state if key not in used)
    return bundle


def torch_to_bundle(plan: Plan, state: Mapping[str, np.ndarray], source: str = "") -> WeightBundle:
    """A torch model's state dict (numpy arrays) -> a bundle in the canonical layout, checked against the plan."""
    described = {key: StoredArray.of(array, f"key {key!r}") for key, array in state.items()}
    return fit_bundle(plan, torch_to_stored(plan, described, source))[0]
