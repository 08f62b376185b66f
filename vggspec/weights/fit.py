"""The one check of a weight file's arrays against a plan, before anything is read or loaded.

:func:`fit_bundle` checks every weighted layer of the plan: the layer is there, each of its
weights is there, with the plan's shape (in the canonical layout of
:mod:`vggspec.weights.canonical`) and a float dtype. File readers give it arrays described by
their metadata (:class:`~vggspec.weights.bundle.StoredArray`; a torch array's shape already
mapped to the canonical one), so a file cannot make vggspec read, reshape or allocate what it
merely declares: data is read only for the layers that fit, after all are checked.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan
from vggspec.spec.load import MAX_PARAMS
from vggspec.weights.bundle import MAX_STORED_BYTES, StoredArray, StoredBundle, WeightBundle


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
