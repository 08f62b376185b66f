"""What fine-tuning changes of a spec: a head for the data's classes, the layers frozen by default, and the
weights that fit (every layer but a head of another size).

A trained spec has a classifier: :func:`head_spec` refuses one without a top, and every trainer then
relies on the plan's classifier being there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from vggspec.backends import Backend
from vggspec.errors import VggspecError, WeightsError
from vggspec.images import image_mode
from vggspec.planner.layers import Dense, Dropout, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D
from vggspec.planner.lower import Plan
from vggspec.spec.load import spec_from_mapping, spec_to_mapping
from vggspec.spec.model import Spec

# the layers after the convolutional part: what fine-tuning may replace
HEAD_TYPES = (Flatten, Dense, Dropout, GlobalAveragePooling2D, GlobalMaxPooling2D)


def head_spec(spec: Spec, classes: int) -> Spec:
    """``spec`` with a predictions layer of ``classes`` outputs (everything else unchanged)."""
    where = spec.source or spec.name
    if not spec.include_top:
        raise VggspecError(
            f"{where}: expected a spec with include_top: true (a classifier head to train), received include_top: false"
        )
    if spec.classifier_activation not in ("softmax", None):
        raise VggspecError(
            f"{where}: expected classifier_activation softmax or null (training uses "
            f"categorical cross-entropy), received {spec.classifier_activation!r}"
        )
    image_mode(spec.input_shape[2], f"{where}: input_shape {list(spec.input_shape)}")
    return spec_from_mapping({**spec_to_mapping(spec), "classes": classes}, source=f"{where} (classes {classes})")


def default_freeze(plan: Plan, pretrained: bool) -> str:
    """The classic recipe with pretrained weights: freeze the convolutional base (up to the last
    pool). From scratch nothing is frozen (random features are not worth keeping)."""
    pools = [layer.name for layer in plan.layers if isinstance(layer, MaxPooling2D)]
    return pools[-1] if pretrained and pools else "none"


def load_pretrained(backend: Backend, model: Any, plan: Plan, weights: Union[str, Path]) -> list[str]:
    """Load the layers of ``weights`` that fit; return a line per skipped head layer.

    Only head layers (fc1, fc2, predictions) may be skipped: a convolutional layer
    that does not fit means the wrong file, and is refused with its shapes.
    """
    from vggspec.building import read_checked_bundle

    bundle, skipped = read_checked_bundle(plan, weights, skip_mismatch=True)
    head = {layer.name for layer in plan.layers if isinstance(layer, HEAD_TYPES)}
    for layer in plan.weighted_layers():
        if layer.name not in bundle.layers and layer.name not in head:
            line = next((s for s in skipped if f"layer {layer.name}:" in s), f"layer {layer.name}")
            raise WeightsError(line + " (only head layers may differ when fine-tuning)")
    backend.set_weights(model, plan, bundle)
    return [f"skipped: {line}" for line in skipped]
