"""Run the same weights and images through several backends and compare them layer by layer.

A layer agrees when  max|a − b| ≤ TOLERANCE · max(1, max|reference|): fp32 on a CPU
differs between frameworks by about 1e-6 of the activations' scale, so 1e-4
leaves room for summation order and still catches any layout mistake (a
transposed kernel or a wrong flatten order gives differences of order 1).

Every pair of backends is compared, the one listed first being the pair's reference; a
layer reports its worst pair. With three or more backends a layer that diverges names the
odd one out when there is one: the backend that disagrees with every other while those
all agree with each other (two backends alone cannot tell which one is wrong).

Beside the layers, each backend's ``predict``, ``get_weights`` and ``save`` are checked
(:mod:`vggspec.parity.paths`); the output differences and top-5 agreement are ``predict``'s.
The report as text is :mod:`vggspec.parity.report_text`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Optional, Sequence

import numpy as np

from vggspec.backends import get_backend
from vggspec.parity.paths import (
    PathCheck,
    check_activations,
    check_against_reference,
    check_get_weights,
    check_predict,
    check_save,
)
from vggspec.planner.lower import Plan
from vggspec.planner.summary import parameter_counts
from vggspec.weights.bundle import WeightBundle

TOLERANCE = 1e-4


@dataclass
class LayerDiff:
    """How far apart one layer's outputs are: those of its worst pair of backends (``pair``, the
    reference first), and with three or more backends the odd one out when the layer diverges."""

    name: str
    shape: tuple[int, ...]
    max_abs_diff: float
    rel_diff: float  # max_abs_diff / max(1, max|reference|)
    pair: tuple[str, str] = ("", "")
    odd_one_out: Optional[str] = None
    disagreeing: list[tuple[str, str]] = field(default_factory=list)  # every pair beyond tolerance
    non_finite: list[str] = field(default_factory=list)  # backends whose output holds NaN or infinity
    every_pair: list[tuple[tuple[str, str], float, float]] = field(default_factory=list)  # (pair, max |Δ|, relative)

    @property
    def ok(self) -> bool:
        return self.rel_diff <= TOLERANCE


@dataclass
class ParityReport:
    """The outcome of ``compare_backends``; ``to_dict`` is its JSON form (what ``vggspec verify`` prints as JSON)."""

    spec_name: str
    backends: list[str]
    weights: str
    images: int
    input_shape: tuple[int, int, int]
    params: dict[str, dict[str, Any]]
    layers: list[LayerDiff] = field(default_factory=list)
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    top5_agreement: Optional[float] = None
    seconds: dict[str, float] = field(default_factory=dict)
    checks: list[PathCheck] = field(default_factory=list)  # the paths users call, per backend (parity.paths)

    @property
    def params_ok(self) -> bool:
        return all(entry["equal_to_plan"] for name, entry in self.params.items() if name != "plan")

    @property
    def first_divergent_layer(self) -> Optional[str]:
        return next((layer.name for layer in self.layers if not layer.ok), None)

    @property
    def odd_one_out(self) -> Optional[str]:
        """The backend that alone disagrees at the first diverging layer (three or more backends), or None."""
        return next((layer.odd_one_out for layer in self.layers if not layer.ok), None)

    @property
    def failed_checks(self) -> list[PathCheck]:
        return [check for check in self.checks if not check.ok]

    @property
    def ok(self) -> bool:
        layers_ok = self.first_divergent_layer is None and self.max_rel_diff <= TOLERANCE
        return self.params_ok and layers_ok and not self.failed_checks

    @property
    def layers_non_finite(self) -> bool:
        """Some backend gave NaN or infinite values at some layer."""
        return any(layer.non_finite for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "spec": self.spec_name,
            "backends": self.backends,
            "weights": self.weights,
            "images": self.images,
            "input_shape": list(self.input_shape),
            "tolerance": TOLERANCE,
            "params": self.params,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "top5_agreement": self.top5_agreement,
            "first_divergent_layer": self.first_divergent_layer,
            "odd_one_out": self.odd_one_out,
            "seconds": self.seconds,
            "checks": [check.to_dict() for check in self.checks],
            "layers": [
                {
                    "name": d.name,
                    "shape": list(d.shape),
                    "max_abs_diff": d.max_abs_diff,
                    "rel_diff": d.rel_diff,
                    "ok": d.ok,
                    "pair": list(d.pair),
                    "disagreeing_pairs": [list(pair) for pair in d.disagreeing],
                    "odd_one_out": d.odd_one_out,
                    "non_finite": d.non_finite,
                    "pairs": [
                        {"pair": list(pair), "max_abs_diff": absolute, "rel_diff": relative}
                        for pair, absolute, relative in d.every_pair
                    ],
                }
                for d in self.layers
            ],
        }


def _diff(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, that over max(1, max |a|)); infinite when either holds a NaN or an infinity: a
    non-finite output agrees with nothing, not even another backend's NaN."""
    if not reference.size:
        return 0.0, 0.0
    if not (np.isfinite(reference).all() and np.isfinite(other).all()):
        return math.inf, math.inf
    reference = reference.astype(np.float64)
    absolute = float(np.max(np.abs(reference - other.astype(np.float64))))
    return absolute, absolute / max(1.0, float(np.max(np.abs(reference))))


def top5_agreement(reference: np.ndarray, other: np.ndarray) -> Optional[float]:
    """The fraction of rows (images) whose five highest scores are the same classes in both; None under 5 classes."""
    if reference.ndim != 2 or reference.shape[1] < 5:
        return None
    top_reference = np.argsort(-reference, axis=1)[:, :5]
    top_other = np.argsort(-other, axis=1)[:, :5]
    return float(np.mean([set(a) == set(b) for a, b in zip(top_reference, top_other)]))


def _badness(diff: LayerDiff) -> float:
    """``rel_diff``, NaN counted as the worst there is."""
    return diff.rel_diff if diff.rel_diff == diff.rel_diff else math.inf


def odd_one_out(backends: Sequence[str], disagreeing: Sequence[tuple[str, str]]) -> Optional[str]:
    """The backend in every disagreeing pair while all the other pairs agree; None when there is no
    such single backend (all agree, no two agree, or fewer than three backends)."""
    if len(backends) < 3 or not disagreeing:
        return None
    wrong = set(disagreeing)
    for name in backends:
        with_it = {pair for pair in combinations(backends, 2) if name in pair}
        if wrong == with_it:
            return name
    return None


def compare_backends(
    plan: Plan, bundle: WeightBundle, images: np.ndarray, backend_names: list[str], progress: bool = True
) -> ParityReport:
    """Build ``plan`` in every backend, load ``bundle`` (checked), run ``images`` (NHWC, preprocessed).

    Every pair is compared; in a pair, the backend listed first is the reference of the relative difference.
    """
    report = ParityReport(
        spec_name=plan.name,
        backends=list(backend_names),
        weights=bundle.source or "given arrays",
        images=int(images.shape[0]),
        input_shape=plan.input_shape,
        params={
            "plan": {
                "total_params": plan.total_params,
                "trainable_params": plan.trainable_params,
                "non_trainable_params": plan.non_trainable_params,
            }
        },
    )
    activations, predictions = _run_backends(report, plan, bundle, images, progress)
    pairs = list(combinations(backend_names, 2))
    for layer in plan.layers:
        diffs = [
            LayerDiff(
                layer.name, layer.output_shape, *_diff(activations[a][layer.name], activations[b][layer.name]), (a, b)
            )
            for a, b in pairs
        ]
        worst = max(diffs, key=_badness)  # the first of equals
        worst.disagreeing = [diff.pair for diff in diffs if not diff.ok]
        worst.non_finite = [name for name in backend_names if not np.isfinite(activations[name][layer.name]).all()]
        worst.odd_one_out = odd_one_out(backend_names, worst.disagreeing)
        worst.every_pair = [(diff.pair, diff.max_abs_diff, diff.rel_diff) for diff in diffs]
        report.layers.append(worst)
    _compare_outputs(report, [(predictions[a], predictions[b]) for a, b in pairs])
    return report


def _run_backends(
    report: ParityReport, plan: Plan, bundle: WeightBundle, images: np.ndarray, progress: bool
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Every backend's activations and ``predict`` of ``images`` with ``bundle`` (by backend); its parameter
    counts, the checks of its paths (:mod:`vggspec.parity.paths`) and its seconds go to ``report``.
    ActivationsMismatch when a backend's activations are not the plan's layers."""
    import time

    from tqdm import tqdm

    activations: dict[str, dict[str, np.ndarray]] = {}
    predictions: dict[str, np.ndarray] = {}
    reference = report.backends[0]
    for name in tqdm(report.backends, desc="backends", unit="backend", disable=not progress, leave=False):
        backend = get_backend(name)
        start = time.perf_counter()
        model = backend.build(plan)
        backend.set_weights(model, plan, bundle)
        trainable, non_trainable = backend.count_params(model)
        report.params[name] = parameter_counts(plan, trainable, non_trainable)
        activations[name] = backend.activations(model, plan, images)
        check_activations(name, plan, activations[name], len(images))
        predictions[name] = np.asarray(backend.predict(model, images))
        report.checks.append(check_predict(name, predictions[name], activations[name][plan.layers[-1].name], TOLERANCE))
        if name != reference:
            expected = predictions[reference]
            report.checks.append(check_against_reference(name, reference, predictions[name], expected, TOLERANCE))
        report.checks.append(check_get_weights(name, backend, model, plan, bundle))
        report.checks.append(check_save(name, backend, model, plan, bundle))
        report.seconds[name] = round(time.perf_counter() - start, 3)
        del model
    return activations, predictions


def _compare_outputs(report: ParityReport, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """The largest differences of ``predict``'s outputs and their lowest top-5 agreement over the pairs, into
    ``report`` (a pair of another shape is infinitely far apart: its predict check says why)."""
    for reference, other in pairs:
        if reference.shape != other.shape:
            report.max_abs_diff = report.max_rel_diff = math.inf
            continue
        absolute, relative = _diff(reference, other)
        report.max_abs_diff = max(report.max_abs_diff, absolute)
        report.max_rel_diff = max(report.max_rel_diff, relative)
        agreement = top5_agreement(reference, other)
        if agreement is not None:
            report.top5_agreement = (
                agreement if report.top5_agreement is None else min(report.top5_agreement, agreement)
            )
