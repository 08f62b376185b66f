"""The budgets every plan keeps, so that no spec can ask for more memory than a workstation has.

They are checked on the plan (pure arithmetic) before anything is allocated:

- ``MAX_PARAMS``: 10⁹ parameters (4 GB of float32; VGG19 has 1.4·10⁸);
- ``MAX_ACTIVATIONS``: 10⁹ values in all the layers' outputs for one image
  (4 GB of float32: what ``vggspec verify`` keeps per image and backend; VGG16 at
  224×224 has 1.5·10⁷, at 1024×1024 3.2·10⁸; VGG16-BN at 1024×1024 8.9·10⁸).

Each excess names the spec field to blame (the one its largest layer comes from), so that
the spec reader can point at the line of the document that asks for too much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from vggspec.planner.layers import Dense, Origin
from vggspec.planner.lower import Plan

MAX_PARAMS = 1_000_000_000
MAX_ACTIVATIONS = 1_000_000_000


@dataclass(frozen=True)
class OverBudget:
    """A budget the plan exceeds: the message, and where to say it.

    ``origin`` is the spec field its largest layer comes from (``()`` when the input's size is to
    blame instead); ``fallback`` is the field to point at when the document does not write ``origin``
    itself (a field taken from a default or a configuration).
    """

    message: str
    origin: Origin
    fallback: Origin


def over_budget(plan: Plan) -> list[OverBudget]:
    """The budgets ``plan`` exceeds: parameters first, then activations; empty when it keeps both."""
    return [excess for excess in (_over_params(plan), _over_activations(plan)) if excess is not None]


def _over_params(plan: Plan) -> Optional[OverBudget]:
    """Over MAX_PARAMS: blamed on the layer with the most parameters."""
    if plan.total_params <= MAX_PARAMS:
        return None
    largest = max(plan.layers, key=lambda layer: layer.params)
    message = (
        f"expected at most {MAX_PARAMS:,} parameters in all, received {plan.total_params:,}; "
        f"the largest layer, {largest.name}, has {largest.params:,}"
    )
    if isinstance(largest, Dense) and largest.reads_flattened is not None:
        h, w, c = largest.reads_flattened
        message += f" as it takes the flattened {h}×{w}×{c} map (add pools or set include_top: false)"
    return OverBudget(message, largest.origin, ("layers",))


def _over_activations(plan: Plan) -> Optional[OverBudget]:
    """Over MAX_ACTIVATIONS: blamed on a dense layer's units, or else on the input's size."""
    if plan.activations_per_image <= MAX_ACTIVATIONS:
        return None
    largest = max(plan.layers, key=lambda layer: layer.output_size)
    h, w, c = plan.input_shape
    dense = len(largest.output_shape) == 1
    message = (
        f"expected at most {MAX_ACTIVATIONS:,} activation values per image in all layers "
        f"({MAX_ACTIVATIONS * 4 / 1e9:g} GB in float32), received {plan.activations_per_image:,} for a "
        f"{h}×{w}×{c} input; the largest output, {largest.name}, is "
        + "×".join(map(str, largest.output_shape))
        + (" (give fewer units)" if dense else " (give a smaller input_shape)")
    )
    if dense:
        return OverBudget(message, largest.origin, ("layers",))
    return OverBudget(message, (), ("input_shape",))
