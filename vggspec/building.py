"""Build a spec with a backend and load weights into it, checking every shape first."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional, Union

from vggspec.backends import get_backend
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.model import Spec
from vggspec.weights.bundle import WeightBundle


def read_checked_bundle(plan: Plan, weights: Union[str, Path], skip_mismatch: bool = False) -> WeightBundle:
    """Read a weight file (any supported format) and check it against the plan before anything is set.

    Without ``skip_mismatch`` a missing layer or wrong shape raises WeightsError; with
    it, what does not fit is left out and named in a warning.
    """
    from vggspec.weights.formats import read_bundle
    from vggspec.weights.layout import fit_bundle

    fitting, skipped = fit_bundle(plan, read_bundle(weights, plan), skip_mismatch)
    for line in skipped:
        warnings.warn(f"skipped: {line}", UserWarning, stacklevel=3)
    return fitting


def load_weights(backend_name: str, model: Any, plan: Plan, weights: Union[str, Path],
                 skip_mismatch: bool = False) -> None:
    """Load a weight file into ``model``; a file that does not fit leaves the model as it was."""
    bundle = read_checked_bundle(plan, weights, skip_mismatch)
    get_backend(backend_name).set_weights(model, plan, bundle)


def build_model(spec: Spec, backend_name: str, weights: Optional[Union[str, Path]] = None,
                skip_mismatch: bool = False) -> Any:
    """The native model of ``spec``, with ``weights`` loaded when given (see ``vggspec.build``)."""
    plan = lower_to_plan(spec)
    backend = get_backend(backend_name)
    bundle = read_checked_bundle(plan, weights, skip_mismatch) if weights is not None else None
    model = backend.build(plan)
    if bundle is not None:
        backend.set_weights(model, plan, bundle)
    return model
