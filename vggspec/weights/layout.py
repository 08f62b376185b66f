"""The one canonical weight layout, and every transform to and from PyTorch's.

Canonical layout (that of the Keras weight files, so that reading
``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` needs no transform and
``.h5 -> .safetensors`` is a copy):

- conv ``kernel``: HWIO ``(kh, kw, in, out)``, float32; ``bias``: ``(out,)``;
- dense ``kernel``: ``(in, out)``; ``bias``: ``(out,)``;
- the dense layer after ``flatten`` (fc1) has its rows in Keras' flatten order of
  the (H, W, C) map: row = (h·W + w)·C + c;
- batch norm: ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, each ``(C,)``.

PyTorch (torchvision's VGG) differs in three places: conv weight OIHW, linear
weight (out, in), and fc1's columns in C,H,W order because torch flattens NCHW.
Batch norm maps gamma/beta/moving_mean/moving_variance to
weight/bias/running_mean/running_var (plus ``num_batches_tracked``).

Module paths follow torchvision: ``features.N`` in the order conv, [bn], act,
[LRN], pool; ``classifier.0/3/6`` for fc1, fc2 and predictions (each hidden
Linear is followed by its activation and a Dropout, as in torchvision).

:func:`fit_bundle` is the one check of arrays against a plan (names, shapes, dtype:
a float type). File readers give it arrays described by their metadata
(:class:`~vggspec.weights.bundle.StoredArray`), and a torch array's shape is mapped
to the canonical one before the check, so no data is read, reshaped or transposed
until its shape is known to fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan, PlanLayer
from vggspec.spec.load import MAX_PARAMS
from vggspec.weights.bundle import MAX_STORED_BYTES, StoredArray, StoredBundle, WeightBundle

BATCH_NORM_TORCH_NAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
DENSE_TORCH_NAMES = {"kernel": "weight", "bias": "bias"}


@dataclass(frozen=True)
class TorchModule:
    """One module of the torch network: its path, what it is and the plan layer it serves.

    ``kind`` is a plan kind (conv, batch_norm, lrn, max_pool, dense) or ``activation``
    / ``dropout`` / ``classifier_activation`` for the parameter-free modules that follow them.
    """

    path: str
    kind: str
    layer: PlanLayer
    option: Any = None  # activation name (str), dropout rate (float) or classifier activation (str)


def torch_modules(plan: Plan) -> list[TorchModule]:
    """The torch modules of ``plan`` in order, with torchvision's paths."""
    modules: list[TorchModule] = []
    features = classifier = 0
    dropout = {layer.name[: -len("_dropout")]: layer.attrs["rate"] for layer in plan.layers if layer.kind == "dropout"}
    for layer in plan.layers:
        if layer.kind in ("conv", "batch_norm", "activation", "lrn", "max_pool"):
            option = layer.attrs.get("activation") if layer.kind == "activation" else None
            modules.append(TorchModule(f"features.{features}", layer.kind, layer, option))
            features += 1
            if layer.kind == "conv" and layer.attrs["activation"] is not None:
                modules.append(TorchModule(f"features.{features}", "activation", layer, layer.attrs["activation"]))
                features += 1
        elif layer.kind == "dense":
            modules.append(TorchModule(f"classifier.{classifier}", "dense", layer))
            classifier += 1
            if layer.name != "predictions":
                modules.append(TorchModule(f"classifier.{classifier}", "activation", layer, layer.attrs["activation"]))
                modules.append(
                    TorchModule(f"classifier.{classifier + 1}", "dropout", layer, dropout.get(layer.name, 0.0))
                )
                classifier += 2
            elif layer.attrs["activation"] is not None:
                modules.append(
                    TorchModule(f"classifier.{classifier}", "classifier_activation", layer, layer.attrs["activation"])
                )
                classifier += 1
    return modules


def _first_dense_after_flatten(plan: Plan) -> Optional[PlanLayer]:
    names = [layer.name for layer in plan.layers]
    if "flatten" not in names:
        return None
    return next(layer for layer in plan.layers[names.index("flatten") :] if layer.kind == "dense")


def _flatten_shape(plan: Plan) -> tuple[int, int, int]:
    return plan.layer("flatten").attrs["from_shape"]


def _to_torch_array(plan: Plan, layer: PlanLayer, name: str, array: np.ndarray) -> np.ndarray:
    if layer.kind == "conv" and name == "kernel":
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))  # HWIO -> OIHW
    if layer.kind == "dense" and name == "kernel":
        if layer is _first_dense_after_flatten(plan):
            h, w, c = _flatten_shape(plan)
            # rows (h, w, c) -> columns (c, h, w)
            return np.ascontiguousarray(array.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(array.shape[1], -1))
        return np.ascontiguousarray(array.T)  # (in, out) -> (out, in)
    return array


def _from_torch_array(plan: Plan, layer: PlanLayer, name: str, array: np.ndarray) -> np.ndarray:
    """torch's layout -> canonical; only for an array whose shape :func:`_from_torch_shape` mapped
    to the plan's (``fit_bundle`` checks it first), so every reshape here is a valid one."""
    if layer.kind == "conv" and name == "kernel":
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))  # OIHW -> HWIO
    if layer.kind == "dense" and name == "kernel":
        if layer is _first_dense_after_flatten(plan):
            h, w, c = _flatten_shape(plan)
            # columns (c, h, w) -> rows (h, w, c)
            return np.ascontiguousarray(array.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(-1, array.shape[0]))
        return np.ascontiguousarray(array.T)
    return array


def _from_torch_shape(layer: PlanLayer, name: str, shape: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
    """(the canonical shape of a torch array of ``shape``, torch's order in words); a rank the
    transform does not take keeps its shape, so it can never match the plan's."""
    if layer.kind == "conv" and name == "kernel":
        return (tuple(shape[i] for i in (2, 3, 1, 0)) if len(shape) == 4 else shape), "torch's OIHW"
    if layer.kind == "dense" and name == "kernel":  # fc1's column order does not change its shape
        return (shape[::-1] if len(shape) == 2 else shape), "torch's (out, in)"
    return shape, ""


def _torch_weight_name(layer: PlanLayer, name: str) -> str:
    return (BATCH_NORM_TORCH_NAMES if layer.kind == "batch_norm" else DENSE_TORCH_NAMES)[name]


def bundle_to_torch(plan: Plan, bundle: WeightBundle) -> dict[str, np.ndarray]:
    """A checked bundle -> torchvision-style state dict of numpy arrays (``features.0.weight``, ...)."""
    state: dict[str, np.ndarray] = {}
    for module in torch_modules(plan):
        if module.kind not in ("conv", "batch_norm", "dense") or module.layer.name not in bundle.layers:
            continue
        for name, array in bundle.layers[module.layer.name].items():
            state[f"{module.path}.{_torch_weight_name(module.layer, name)}"] = _to_torch_array(
                plan, module.layer, name, array
            )
        if module.kind == "batch_norm":
            state[f"{module.path}.num_batches_tracked"] = np.zeros((), dtype=np.int64)
    return state


def _from_torch(plan: Plan, layer: PlanLayer, name: str, key: str, array: StoredArray) -> StoredArray:
    shape, order = _from_torch_shape(layer, name, array.shape)
    stored = f"{array.stored or f'key {key!r}'} of shape {array.shape}" + (f", {order}" if order else "")
    return StoredArray(
        shape, array.dtype, stored, lambda: _from_torch_array(plan, layer, name, array.read()), transposed=bool(order)
    )


def torch_to_stored(plan: Plan, state: Mapping[str, StoredArray], source: str = "") -> StoredBundle:
    """A torchvision-style state dict of a file (torch's layout) -> the canonical layout, by the plan's module
    paths; shapes are mapped, data is transformed only when read (after ``fit_bundle``). A missing key is refused."""
    bundle = StoredBundle(source=source)
    for module in torch_modules(plan):
        if module.kind not in ("conv", "batch_norm", "dense"):
            continue
        weights = {}
        for name, _ in module.layer.weights:
            key = f"{module.path}.{_torch_weight_name(module.layer, name)}"
            if key not in state:
                raise WeightsError(
                    f"{source}: layer {module.layer.name}: expected the key {key!r}, received a state dict without it"
                )
            weights[name] = _from_torch(plan, module.layer, name, key, state[key])
        bundle.layers[module.layer.name] = weights
    return bundle


def torch_to_bundle(plan: Plan, state: Mapping[str, np.ndarray], source: str = "") -> WeightBundle:
    """A torch model's state dict (numpy arrays) -> bundle in the canonical layout, checked against the plan."""
    described = {key: StoredArray.of(array, f"key {key!r}") for key, array in state.items()}
    return fit_bundle(plan, torch_to_stored(plan, described, source))[0]


def swap_input_channels(bundle: WeightBundle, plan: Plan) -> WeightBundle:
    """Reverse the input channels of the first convolution (BGR <-> RGB); other layers are shared."""
    first = next(layer for layer in plan.layers if layer.kind == "conv")
    layers = dict(bundle.layers)
    weights = dict(layers[first.name])
    weights["kernel"] = np.ascontiguousarray(weights["kernel"][:, :, ::-1, :])
    layers[first.name] = weights
    return WeightBundle(layers=layers, source=bundle.source)


def _mismatch_hint(expected: tuple[int, ...], received: tuple[int, ...]) -> str:
    if len(expected) == 4 and tuple(received) == (expected[3], expected[2], expected[0], expected[1]):
        return " (this is OIHW, the PyTorch/Theano kernel order; vggspec reads HWIO)"
    if len(expected) == 4 and tuple(received) == (expected[3], expected[2], expected[1], expected[0]):
        return " (the kernel looks Theano-ordered; convert it to HWIO)"
    if len(expected) == 2 and tuple(received) == expected[::-1]:
        return " (this is (out, in), the PyTorch order; vggspec reads (in, out))"
    return ""


# What a weight may be stored as; every one is read as float32 (torch's bfloat16 widened).
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _stored_suffix(array: StoredArray) -> str:
    return f" ({array.stored})" if array.stored else ""


def _array_problem(name: str, expected: Optional[tuple[int, ...]], array: StoredArray) -> Optional[str]:
    """What is wrong with one array against the plan's (name, shape), or None: the one check of
    shape and dtype, made on a file's metadata before its data is read (``expected`` None: dtype only)."""
    received = tuple(array.shape)
    if expected is not None and received != tuple(expected):
        hint = "" if array.transposed else _mismatch_hint(tuple(expected), received)
        return f"expected {name} of shape {tuple(expected)}, received {received}{hint}{_stored_suffix(array)}"
    if array.dtype not in FLOAT_DTYPES:
        return (
            f"expected {name} as {', '.join(FLOAT_DTYPES[:-1])} or {FLOAT_DTYPES[-1]}, received {array.dtype}"
            f"{_stored_suffix(array)}"
        )
    return None


def fit_bundle(
    plan: Plan, bundle: Union[StoredBundle, WeightBundle], skip_mismatch: bool = False
) -> tuple[WeightBundle, list[str]]:
    """Check ``bundle`` against ``plan`` (every layer, weight name, shape and dtype), then read what fits.

    Returns (the arrays to load, float32 numpy arrays in the plan's order; a line per
    skipped layer). A file's bundle (a StoredBundle) is checked on its arrays' metadata,
    and only the layers that fit are read, after all are checked. Without
    ``skip_mismatch`` any missing layer, wrong shape or dtype raises :class:`WeightsError`
    naming the layer and both shapes; with it, layers that do not fit are skipped and
    named (as Keras' ``skip_mismatch``), never read.
    """
    if isinstance(bundle, WeightBundle):
        bundle = bundle.described()
    fitting: list[PlanLayer] = []
    skipped: list[str] = []
    for layer in plan.weighted_layers():
        where = f"{bundle.source}: layer {layer.name}" if bundle.source else f"layer {layer.name}"
        arrays = bundle.layers.get(layer.name)
        problem = None
        if arrays is None:
            problem = f"{where}: expected weights for this layer, received a file without it"
        else:
            for name, shape in layer.weights:
                if name not in arrays:
                    problem = f"{where}: expected the weight {name!r} {shape}, received none"
                    break
                reason = _array_problem(name, shape, arrays[name])
                if reason:
                    problem = f"{where}: {reason}"
                    break
        if problem:
            if not skip_mismatch:
                raise WeightsError(problem)
            skipped.append(problem)
        else:
            fitting.append(layer)
    loaded = WeightBundle(source=bundle.source)
    for layer in fitting:
        loaded.layers[layer.name] = {
            name: np.asarray(bundle.layers[layer.name][name].read(), dtype=np.float32) for name, _ in layer.weights
        }
    return loaded, skipped


def read_stored(bundle: StoredBundle) -> WeightBundle:
    """Every array of a file's bundle, read as stored, for a file read without a plan to check it against.

    Each dtype is checked as ``fit_bundle`` does, and the arrays together may hold at most
    MAX_STORED_BYTES (the spec budget in float32), checked before anything is read.
    """
    total = 0
    for layer, arrays in bundle.layers.items():
        for name, array in arrays.items():
            where = f"{bundle.source}: layer {layer}"
            reason = _array_problem(name, None, array)
            if reason:
                raise WeightsError(f"{where}: {reason}")
            total += array.size * 4
            if total > MAX_STORED_BYTES:
                raise WeightsError(
                    f"{where}: expected arrays of at most {MAX_STORED_BYTES:,} bytes in all as float32 "
                    f"(the spec budget of {MAX_PARAMS:,} parameters), received {name} of shape "
                    f"{tuple(array.shape)}{_stored_suffix(array)}, past that"
                )
    return WeightBundle(
        {layer: {name: array.read() for name, array in arrays.items()} for layer, arrays in bundle.layers.items()},
        source=bundle.source,
    )
