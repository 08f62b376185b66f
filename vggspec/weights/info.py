"""What ``vggspec weights info`` says about a weight file: its format, layout, arrays, parameters and
metadata, read from the file's headers and attributes (no array's data is read)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from vggspec.planner.lower import Plan
from vggspec.weights.meta import WeightsMeta, plan_digest
from vggspec.weights.resolve import resolve_weights

LAYOUTS = {
    "keras1-h5": "canonical (Keras): conv HWIO, dense (in, out), fc1 rows in H,W,C order",
    "keras2-h5": "canonical (Keras): conv HWIO, dense (in, out), fc1 rows in H,W,C order",
    "keras-model-h5": "canonical (Keras): conv HWIO, dense (in, out), fc1 rows in H,W,C order",
    "keras3-weights-h5": "canonical (Keras): conv HWIO, dense (in, out), fc1 rows in H,W,C order",
    "keras-archive": "canonical (Keras): conv HWIO, dense (in, out), fc1 rows in H,W,C order",
    "safetensors": "the file's keys say: LAYER/WEIGHT canonical (Keras), features.N torchvision's",
    "torch": "torchvision's: conv OIHW, dense (out, in), fc1 columns in C,H,W order",
}


@dataclass(frozen=True)
class WeightsInfo:
    """``arrays`` and ``parameters`` count what the file holds (None: not readable without a spec);
    ``fits`` says whether its arrays are the given spec's (None: no spec to compare with)."""

    path: Path
    name: str
    format: str
    layout: str
    size_bytes: int
    arrays: Optional[int]
    parameters: Optional[int]
    meta: Optional[WeightsMeta]
    spec: Optional[str]
    fits: Optional[bool]

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["path"] = str(self.path)
        fields["meta"] = None if self.meta is None else dataclasses.asdict(self.meta)
        return fields


def weights_info(weights: Union[str, Path], plan: Optional[Plan] = None) -> WeightsInfo:
    """Describe the weight file (or known name) ``weights``; ``plan`` (else the spec its metadata names, when
    that is a shipped spec) maps the arrays of files that need one (Keras 3, PyTorch)."""
    from vggspec.weights.formats import DESCRIPTIONS, NEEDS_PLAN, detect_format, open_bundle

    resolved = resolve_weights(weights)
    kind = detect_format(resolved.path)
    if plan is None and resolved.meta is not None:
        plan = _shipped_plan(resolved.meta.spec)
    arrays = parameters = None
    fits = None
    if plan is not None or kind not in NEEDS_PLAN:
        with open_bundle(resolved.path, plan) as stored:
            described = [array for layer in stored.layers.values() for array in layer.values()]
            arrays = len(described) + len(stored.extra)
            parameters = sum(array.size for array in described)
    elif kind == "torch":
        arrays, parameters = _torch_counts(resolved.path)
    if plan is not None and resolved.meta is not None and resolved.meta.plan_digest:
        fits = resolved.meta.plan_digest == plan_digest(plan)
    return WeightsInfo(
        path=resolved.path,
        name=resolved.name,
        format=DESCRIPTIONS[kind],
        layout=LAYOUTS[kind],
        size_bytes=resolved.path.stat().st_size,
        arrays=arrays,
        parameters=parameters,
        meta=resolved.meta,
        spec=None if plan is None else plan.name,
        fits=fits,
    )


def _shipped_plan(name: str) -> Optional[Plan]:
    from vggspec.errors import SpecError
    from vggspec.planner.lower import lower_to_plan
    from vggspec.spec.load import load_spec
    from vggspec.spec.shipped import shipped_names

    if name not in shipped_names():
        return None
    try:
        return lower_to_plan(load_spec(name))
    except SpecError:
        return None


def _torch_counts(path: Path) -> tuple[int, int]:
    """(tensors, their floating-point elements) of a state dict, without a spec to map its keys."""
    from vggspec.weights.torch_file import load_torch_mapped, torch_module

    torch = torch_module(path)
    loaded = load_torch_mapped(path)
    values = loaded.values() if isinstance(loaded, dict) else ()
    tensors = [value for value in values if isinstance(value, torch.Tensor)]
    return len(tensors), sum(int(tensor.numel()) for tensor in tensors if tensor.is_floating_point())
