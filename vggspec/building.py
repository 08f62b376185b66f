"""Build a spec with a backend and load weights into it, checking every shape first."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional, Union

from vggspec.backends import get_backend
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.model import Spec
from vggspec.weights.bundle import WeightBundle


def read_checked_bundle(
    plan: Plan, weights: Union[str, Path], skip_mismatch: bool = False
) -> tuple[WeightBundle, list[str]]:
    """Read a weight file (any supported format) and check it against the plan before anything is set.

    Every array's shape and dtype is checked on the file's metadata before its data is
    read. Returns (the arrays that fit, a line per layer left out). Without ``skip_mismatch``
    a missing layer or wrong shape raises WeightsError; with it, it is left out (never read) and named.
    """
    from vggspec.weights.formats import open_bundle
    from vggspec.weights.layout import fit_bundle

    with open_bundle(weights, plan) as stored:
        return fit_bundle(plan, stored, skip_mismatch)


def build_model(
    spec: Spec, backend_name: str, weights: Optional[Union[str, Path]] = None, skip_mismatch: bool = False
) -> Any:
    """The native model of ``spec``, with ``weights`` loaded when given (see ``vggspec.build``)."""
    plan = lower_to_plan(spec)
    backend = get_backend(backend_name)
    if weights is None:
        return backend.build(plan)
    bundle, skipped = read_checked_bundle(plan, weights, skip_mismatch)
    for line in skipped:
        warnings.warn(f"skipped: {line}", UserWarning, stacklevel=3)
    model = backend.build(plan)
    backend.set_weights(model, plan, bundle)
    return model
