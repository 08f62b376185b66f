"""The one check of a weight file's arrays against a plan, before anything is read or loaded.

:func:`fit_bundle` checks every weighted layer of the plan: the layer is there, each of its
weights is there, with the plan's shape (in the canonical layout of
:mod:`vggspec.weights.canonical`) and a float dtype. File readers give it arrays described by
their metadata (:class:`~vggspec.weights.bundle.StoredArray`; a torch array's shape already
mapped to the canonical one), so a file cannot make vggspec read, reshape or allocate what it
merely declares: data is read only for the layers that fit, after all are checked.

The file's arrays that the plan does not use are named too (the checked bundle's ``extra``, the
fitted one's ``unused``: :mod:`vggspec.weights.unused`), for the commands to say in one line.

Layers are matched by name, or by order when none of the file's layer names is one of the
plan's (:func:`match_layers`): a model written by hand (``Sequential()`` of auto-named
``conv2d_1`` ... ``dense_3``) saves files that Keras' own ``load_weights`` reads by order too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.budget import MAX_PARAMS
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import MAX_STORED_BYTES, StoredArray, StoredBundle, WeightBundle
from vggspec.weights.unused import unused_arrays


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
FINITE_CHUNK = 1 << 22  # values checked at a time: a bool mask of fc1's 103M values would cost 103 MB


def _non_finite(values: np.ndarray) -> str:
    """How many values are NaN, +inf and -inf, and where the first is (``values`` has some)."""
    counts = []
    for word, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        count = int(np.count_nonzero(test(values)))
        if count:
            counts.append(f"{count:,} {word}")
    first = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
    return f"{', '.join(counts)} (the first at index {first})"


def finite_values(array: np.ndarray, where: str, as_float32: bool = True) -> np.ndarray:
    """``array`` (as float32 unless ``as_float32`` is False) when every value is finite in float32;
    WeightsError naming ``where`` and counting the NaN and infinite values otherwise (float64 values beyond
    float32's range, which it would make infinite, are refused with that reason). Checked in chunks of
    float32: no mask or copy of the whole array."""
    stored = np.asarray(array)
    flat = stored.reshape(-1)
    for start in range(0, flat.size, FINITE_CHUNK):
        with np.errstate(over="ignore", invalid="ignore"):
            chunk = flat[start : start + FINITE_CHUNK].astype(np.float32)
        if not np.isfinite(chunk).all():
            raise _not_finite(stored, where)
    return stored.astype(np.float32, copy=False) if as_float32 else stored


def _not_finite(stored: np.ndarray, where: str) -> WeightsError:
    with np.errstate(over="ignore", invalid="ignore"):
        values = stored.astype(np.float32)
    if np.isfinite(stored).all():  # finite as stored: too large for float32
        return WeightsError(
            f"{where}: expected values float32 can hold (at most {float(np.finfo(np.float32).max):.4g}), "
            f"received {_non_finite(values)} from values up to {float(np.abs(stored).max()):.4g}"
        )
    return WeightsError(f"{where}: expected finite values, received {_non_finite(values)}")


def read_finite(array: StoredArray, where: str) -> np.ndarray:
    """A stored array read as float32, every value finite (:func:`finite_values`): what loading a weight means."""
    return finite_values(array.read(), f"{where}{_stored_suffix(array)}")


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


def layer_problem(layer: PlanLayer, arrays: Mapping[str, StoredArray]) -> Optional[str]:
    """What keeps a file's arrays for one layer from fitting the plan's ``layer`` (a weight missing,
    a shape, a dtype), or None; the file's other arrays are not looked at."""
    for name, shape in layer.weights:
        if name not in arrays:
            return f"expected the weight {name!r} {shape}, received none"
        reason = _array_problem(name, shape, arrays[name])
        if reason:
            return reason
    return None


# (the file's layer name, the plan's layer name) for each weighted layer, in order
LayerPairs = tuple[tuple[str, str], ...]


@dataclass
class FittedBundle(WeightBundle):
    """What :func:`fit_bundle` gives: the arrays that fit, under the plan's layer names, and how the
    file's layers were matched. ``by_order`` pairs (file layer, plan layer) when the file was read by
    order (its names are not the plan's); it is empty when the layers were matched by name.
    ``unused`` names the file's arrays the plan does not use (:mod:`vggspec.weights.unused`)."""

    by_order: LayerPairs = ()
    unused: tuple[str, ...] = ()

    def matching_note(self) -> Optional[str]:
        """One line saying the file was read by order and how its layers were paired; None when by name."""
        if not self.by_order:
            return None
        pairs = ", ".join(_pair(pair) for pair in self.by_order)
        return (
            f"{self.source}: its layer names are not the plan's, so its {_weighted(len(self.by_order))} "
            f"were matched by order (as Keras' load_weights does): {pairs}"
        )


def _by_name(plan: Plan, bundle: StoredBundle) -> bool:
    """Whether the file's layers are matched by name: it has no layers, or one named as a plan layer, or the plan
    has none to match (an input and pools: a feature extractor cut before the first convolution)."""
    names = {layer.name for layer in plan.weighted_layers()}
    return not bundle.layers or not names or any(layer in names for layer in bundle.layers)


def match_layers(plan: Plan, bundle: StoredBundle, skip_mismatch: bool = False) -> tuple[StoredBundle, LayerPairs]:
    """The file's layers under the plan's names, and the pairs (file layer, plan layer) when matched by order.

    When none of the file's layer names is a plan layer's (a hand-written Keras model's
    ``conv2d_1`` ... ``dense_3``; ``ZeroPadding2D`` and other weightless layers are already left
    out by the reader), the file's weighted layers are paired in order with the plan's, as
    Keras' ``load_weights`` does. Refused in one line when the counts differ or, without
    ``skip_mismatch``, when a pair's weights do not fit (checked on metadata, nothing read),
    naming where the order stops fitting; with ``skip_mismatch`` a pair that does not fit is
    left to :func:`fit_bundle` to skip. Otherwise (by name) the bundle is returned as it is.
    """
    if _by_name(plan, bundle):
        return bundle, ()
    theirs, ours = list(bundle.layers.items()), plan.weighted_layers()
    pairs = [(name, layer.name) for (name, _), layer in zip(theirs, ours)]
    start = f"{bundle.source}: " if bundle.source else ""
    if len(theirs) != len(ours):
        start += f"the file has {_weighted(len(theirs))}, the plan {len(ours)}; "
    start += "read by order (its layer names are not the plan's)"
    for index, ((name, arrays), layer) in enumerate(zip(theirs, ours)):
        problem = layer_problem(layer, arrays)
        if problem is None or (skip_mismatch and len(theirs) == len(ours)):
            continue
        after = f", after {_pair(pairs[index - 1])}" if index else ""
        raise WeightsError(
            f"{start}, the order stops fitting at file layer {index + 1} of {len(theirs)} ({name}) "
            f"→ plan layer {layer.name}{after}: {problem}"
        )
    if len(theirs) != len(ours):
        names = [layer.name for layer in ours[len(theirs) :]] or [name for name, _ in theirs[len(ours) :]]
        has = "has" if len(names) == 1 else "have"
        whose, other = ("the plan's", "file") if len(ours) > len(theirs) else ("the file's", "plan")
        left = f"{whose} {', '.join(names)} {has} no {other} layer"
        raise WeightsError(f"{start}, all {len(pairs)} pairs fit up to {_pair(pairs[-1])}, and {left}")
    renamed = StoredBundle({layer.name: arrays for (_, arrays), layer in zip(theirs, ours)}, bundle.source)
    return renamed, tuple(pairs)


def _pair(pair: tuple[str, str]) -> str:
    return f"{pair[0]} → {pair[1]}"


def _weighted(count: int) -> str:
    return f"{count} weighted layer{'' if count == 1 else 's'}"


def check_bundle(
    plan: Plan, bundle: StoredBundle, skip_mismatch: bool = False
) -> tuple[StoredBundle, LayerPairs, list[str]]:
    """Check a file's ``bundle`` against ``plan`` on its arrays' metadata (every layer, weight name, shape
    and dtype), nothing read.

    Returns (the plan layers that fit, under the plan's names and in its order, each with its weights in
    the plan's order, still unread, and as its ``extra`` the file's arrays the plan does not use; the pairs
    when matched by order (:func:`match_layers`); a line per skipped layer). Without ``skip_mismatch`` any
    missing layer, wrong shape or dtype raises :class:`WeightsError` naming the layer and both shapes; with
    it, layers that do not fit are left out and named (as Keras' ``skip_mismatch``).
    """
    bundle, by_order = match_layers(plan, bundle, skip_mismatch)
    fitting: dict[str, dict[str, StoredArray]] = {}
    skipped: list[str] = []
    skipped_layers: set[str] = set()
    for layer in plan.weighted_layers():
        where = f"{bundle.source}: layer {layer.name}" if bundle.source else f"layer {layer.name}"
        arrays = bundle.layers.get(layer.name)
        problem = None
        if arrays is None:
            problem = f"{where}: expected weights for this layer, received a file without it"
        else:
            reason = layer_problem(layer, arrays)
            problem = f"{where}: {reason}" if reason else None
        if problem:
            if not skip_mismatch:
                raise WeightsError(problem)
            skipped.append(problem)
            skipped_layers.add(layer.name)
        else:
            assert arrays is not None
            fitting[layer.name] = {name: arrays[name] for name, _ in layer.weights}
    unused = unused_arrays(plan, bundle, skipped_layers)
    return StoredBundle(fitting, bundle.source, unused), by_order, skipped


def fit_bundle(
    plan: Plan, bundle: Union[StoredBundle, WeightBundle], skip_mismatch: bool = False
) -> tuple[FittedBundle, list[str]]:
    """Check ``bundle`` against ``plan`` (:func:`check_bundle`), then read what fits.

    Returns (the arrays to load, float32 numpy arrays in the plan's order; a line per
    skipped layer). A file's bundle (a StoredBundle) is checked on its arrays' metadata,
    and only the layers that fit are read, after all are checked. A file whose layer names
    are none of the plan's is matched by order first (the pairs are the result's ``by_order``).
    """
    if isinstance(bundle, WeightBundle):
        bundle = bundle.described()
    checked, by_order, skipped = check_bundle(plan, bundle, skip_mismatch)
    loaded = FittedBundle(source=checked.source, by_order=by_order, unused=checked.extra)
    for layer, arrays in checked.layers.items():
        where = f"{checked.source}: layer {layer}: " if checked.source else f"layer {layer}: "
        loaded.layers[layer] = {name: read_finite(array, where + name) for name, array in arrays.items()}
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
        {
            layer: {
                name: finite_values(array.read(), f"{bundle.source}: layer {layer}: {name}", as_float32=False)
                for name, array in arrays.items()
            }
            for layer, arrays in bundle.layers.items()
        },
        source=bundle.source,
    )
