"""What ``verify`` checks beyond the layers a backend reports: the paths users call.

A backend's ``activations`` are what the layer table compares, but users run ``predict``
(``vggspec predict``), ``get_weights`` (converting a model's weights) and ``save`` (``vggspec
build``). Each backend is held to them, each check a :class:`PathCheck`:

- ``activations``: every plan layer, no other, each ``(N, *output_shape)`` float32; anything else
  stops the comparison (:class:`ActivationsMismatch`: one line naming the backend and the layers);
- ``predict``: equal to the backend's own last-layer activation, within the tolerance;
- ``predict = <reference>``: equal to the reference's (the first backend's) ``predict``, within the tolerance;
- ``get_weights``: bit for bit the arrays that were set;
- ``save``: for a backend that names the suffix of its file (:class:`~vggspec.backends.SavesWeightFile`) in a
  format vggspec reads as weights, the file read back holds bit for bit the arrays that were set. Skipped
  otherwise (the onnx backend: reading ``.onnx`` would need onnx's protobuf in the core, or a parser of
  untrusted protobuf of its own, and an ``.onnx`` file is an export, not a weight file users convert).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vggspec.backends import Backend, SavesWeightFile
from vggspec.errors import BackendError, VggspecError, WeightsError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle


class ActivationsMismatch(BackendError):
    """A backend's ``activations`` are not the plan's layers: the comparison cannot go on (exit status 1)."""


@dataclass(frozen=True)
class PathCheck:
    """One check of one backend: ``ok``, or why not (``detail``); a ``skipped`` check is ok."""

    backend: str
    check: str
    ok: bool
    detail: str = ""
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "check": self.check,
            "ok": self.ok,
            "skipped": self.skipped,
            "detail": self.detail,
        }


def relative_difference(reference: np.ndarray, other: np.ndarray) -> float:
    """max|a - b| / max(1, max|a|), as the layers are compared; infinite for NaN, infinity or a shape mismatch."""
    if np.shape(reference) != np.shape(other):
        return math.inf
    if not np.size(reference):
        return 0.0
    if not (np.isfinite(reference).all() and np.isfinite(other).all()):
        return math.inf
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    return float(np.max(np.abs(reference - other))) / max(1.0, float(np.max(np.abs(reference))))


def check_activations(name: str, plan: Plan, activations: dict[str, np.ndarray], count: int) -> None:
    """ActivationsMismatch naming the backend and the layers when ``activations`` misses, adds or misshapes any."""
    expected = {layer.name: (count, *layer.output_shape) for layer in plan.layers}
    problems = []
    missing = [layer for layer in expected if layer not in activations]
    extra = [layer for layer in activations if layer not in expected]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"not in the plan: {', '.join(extra)}")
    for layer, shape in expected.items():
        array = activations.get(layer)
        if array is not None and tuple(np.shape(array)) != shape:
            problems.append(f"{layer} of shape {tuple(np.shape(array))} instead of {shape}")
        elif array is not None and np.asarray(array).dtype != np.float32:
            problems.append(f"{layer} of dtype {np.asarray(array).dtype} instead of float32")
    if problems:
        raise ActivationsMismatch(
            f"backend {name!r}: activations: expected every layer of the plan {plan.name}, each (N, *output_shape) "
            f"in float32, received {'; '.join(problems)}"
        )


def check_predict(name: str, predicted: np.ndarray, last: np.ndarray, tolerance: float) -> PathCheck:
    """``predict`` against the backend's own last-layer activation (NaN where it has NaN too: the layers say so)."""
    predicted = np.asarray(predicted)
    difference = relative_difference(last, predicted)
    if difference <= tolerance or (predicted.shape == last.shape and np.array_equal(last, predicted, equal_nan=True)):
        return PathCheck(name, "predict", True, f"equals its last layer (relative {difference:.2e})")
    return PathCheck(name, "predict", False, f"differs from its last layer's activation: {_how(last, predicted)}")


def check_against_reference(
    name: str, reference: str, predicted: np.ndarray, expected: np.ndarray, tolerance: float
) -> PathCheck:
    """``predict`` against the reference backend's ``predict``."""
    check = f"predict = {reference}"
    difference = relative_difference(expected, np.asarray(predicted))
    if difference <= tolerance:
        return PathCheck(name, check, True, f"relative {difference:.2e}")
    return PathCheck(name, check, False, f"differs from {reference}'s predict: {_how(expected, predicted)}")


def _how(expected: np.ndarray, received: Any) -> str:
    """How far apart two outputs are, in words (shapes first)."""
    received = np.asarray(received)
    if received.shape != expected.shape:
        return f"shape {received.shape} instead of {expected.shape}"
    if not (np.isfinite(expected).all() and np.isfinite(received).all()):
        return "NaN or infinite values"
    return f"relative difference {relative_difference(expected, received):.2e}"


def bundle_difference(expected: WeightBundle, received: WeightBundle) -> Optional[str]:
    """The first way ``received`` is not bit for bit ``expected`` (layer, weight, what), or None."""
    for layer, weights in expected.layers.items():
        if layer not in received.layers:
            return f"no layer {layer}"
        for weight, array in weights.items():
            other = received.layers[layer].get(weight)
            if other is None:
                return f"{layer}: no {weight}"
            other = np.asarray(other)
            if other.dtype != np.float32 or other.shape != array.shape:
                return f"{layer}/{weight}: {other.dtype} {other.shape} instead of float32 {array.shape}"
            differing = int(np.count_nonzero(other.view(np.uint32) != np.asarray(array, np.float32).view(np.uint32)))
            if differing:
                return f"{layer}/{weight}: {differing:,} of {array.size:,} values differ from those set"
    return None


def check_get_weights(name: str, backend: Backend, model: Any, plan: Plan, bundle: WeightBundle) -> PathCheck:
    """``get_weights`` gives bit for bit the arrays ``set_weights`` was given."""
    problem = bundle_difference(bundle, backend.get_weights(model, plan))
    return PathCheck(name, "get_weights", problem is None, problem or "bit for bit the arrays set")


def check_save(name: str, backend: Backend, model: Any, plan: Plan, bundle: WeightBundle) -> PathCheck:
    """``save`` to a temporary file named with the backend's suffix, read back as weights: the arrays set."""
    from vggspec.weights.formats import format_for_name, read_bundle

    if not isinstance(backend, SavesWeightFile):
        return PathCheck(name, "save", True, "the backend does not name the suffix of its file", True)
    suffix = backend.save_suffix
    try:
        format_for_name(f"model{suffix}")
    except WeightsError:
        return PathCheck(name, "save", True, f"it writes {suffix}, which vggspec does not read as weights", True)
    with tempfile.TemporaryDirectory(prefix="vggspec-verify-") as folder:
        path = Path(folder) / f"{plan.name}{suffix}"
        try:
            backend.save(model, str(path))
            problem = bundle_difference(bundle, read_bundle(path, plan))
        except (VggspecError, OSError) as error:
            return PathCheck(name, "save", False, f"{suffix} not written and read back: {error}")
    if problem:
        return PathCheck(name, "save", False, f"the {suffix} file read back: {problem}")
    return PathCheck(name, "save", True, f"the {suffix} file read back holds the arrays set")
