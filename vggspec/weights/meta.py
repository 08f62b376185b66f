"""What a weight file's numbers mean: the metadata vggspec writes beside the arrays.

torchvision ties preprocessing and categories to its weights (``WeightsEnum.transforms``, ``meta``),
timm to each checkpoint (``pretrained_cfg``); a bare array file says none of it, and the wrong
preprocessing fails in silence (every shape matches, the classes are wrong). So every file vggspec
writes says what it is, where the format can hold it, as one JSON object under the key ``vggspec``:

- safetensors: ``__metadata__["vggspec"]`` (a string, as the format's metadata are strings);
- HDF5 (Keras 1/2 ``.h5``, Keras 3 ``.weights.h5``): the root attribute ``vggspec``;
- PyTorch ``.pt``: the state dict's ``_metadata["vggspec"]`` (torch's own per-module metadata
  dictionary: no module is named ``vggspec``, so ``load_state_dict(strict=True)`` ignores it).

Fields (all optional but ``spec``): the spec's name and ``plan_digest`` (16 hex digits of the sha256 of
its weighted layers' names, kinds and weight shapes: two specs with the same digest read the same
file), ``input_shape`` (height, width, channels), ``preprocessing`` (a mode of
:mod:`vggspec.preprocessing`; None: not known), ``labels`` (the class names in index order, or
``"imagenet"`` for the ImageNet index shipped in the package), ``source`` and ``source_sha256`` (the
file the arrays came from), ``origin`` (who made them, in words) and the vggspec version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional, Union

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan
from vggspec.spec.model import PREPROCESSING_MODES

KEY = "vggspec"  # the metadata key, the attribute name, the _metadata entry
IMAGENET = "imagenet"  # labels: the ImageNet class index shipped in the package
MAX_META_CHARS = 1 << 20  # a JSON object a file may declare (class names of a large head fit)

Labels = Union[str, tuple[str, ...], None]


def plan_digest(plan: Plan) -> str:
    """16 hex digits naming the arrays a plan's weights are: each weighted layer's name, kind and weight shapes
    (what a weight file must match), nothing else (dropout rates, activations, preprocessing do not count)."""
    described = [
        [layer.name, layer.type_name, [[name, list(shape)] for name, shape in layer.weights]]
        for layer in plan.weighted_layers()
    ]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WeightsMeta:
    """The metadata of one weight file (see the module)."""

    spec: str
    plan_digest: str = ""
    input_shape: Optional[tuple[int, int, int]] = None
    preprocessing: Optional[str] = None
    labels: Labels = None
    source: str = ""
    source_sha256: str = ""
    origin: str = ""
    vggspec_version: str = ""

    @classmethod
    def for_plan(cls, plan: Plan, **fields: Any) -> WeightsMeta:
        """Metadata naming ``plan`` (name, digest, input shape) and this vggspec's version, plus ``fields``."""
        from vggspec import __version__

        return cls(
            spec=plan.name,
            plan_digest=plan_digest(plan),
            input_shape=plan.input_shape,
            vggspec_version=__version__,
            **fields,
        )

    def fits(self, plan: Plan) -> bool:
        """Whether the file's arrays are the plan's (same digest); True when the file does not say."""
        return not self.plan_digest or self.plan_digest == plan_digest(plan)

    def to_json(self) -> str:
        fields = {name: value for name, value in dataclasses.asdict(self).items() if value not in (None, "", ())}
        fields["spec"] = self.spec
        return json.dumps({"version": 1, **fields}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> WeightsMeta:
        """Parse what :meth:`to_json` wrote; WeightsError naming ``where`` and the field when it is not that."""
        if len(text) > MAX_META_CHARS:
            raise WeightsError(f"{where}: metadata {KEY}: expected at most {MAX_META_CHARS:,} characters")
        try:
            value = json.loads(text)
        except ValueError as error:
            raise WeightsError(f"{where}: metadata {KEY}: expected a JSON object, received {error}") from None
        if not isinstance(value, dict) or not isinstance(value.get("spec"), str) or not value["spec"]:
            raise WeightsError(f"{where}: metadata {KEY}: expected a JSON object with a non-empty string 'spec'")
        return cls(
            spec=value["spec"],
            plan_digest=_text(value, "plan_digest", where),
            input_shape=_shape(value.get("input_shape"), where),
            preprocessing=_preprocessing(value.get("preprocessing"), where),
            labels=_labels(value.get("labels"), where),
            source=_text(value, "source", where),
            source_sha256=_text(value, "source_sha256", where),
            origin=_text(value, "origin", where),
            vggspec_version=_text(value, "vggspec_version", where),
        )


def _field_error(where: str, name: str, expected: str, value: object) -> WeightsError:
    return WeightsError(f"{where}: metadata {KEY}.{name}: expected {expected}, received {value!r}"[:400])


def _text(value: dict[str, Any], name: str, where: str) -> str:
    text = value.get(name, "")
    if not isinstance(text, str):
        raise _field_error(where, name, "a string", text)
    return text


def _shape(value: object, where: str) -> Optional[tuple[int, int, int]]:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)
    ):
        raise _field_error(where, "input_shape", "[height, width, channels], positive integers", value)
    return (value[0], value[1], value[2])


def _preprocessing(value: object, where: str) -> Optional[str]:
    if value is None or value in PREPROCESSING_MODES:
        return value
    raise _field_error(where, "preprocessing", f"one of {', '.join(PREPROCESSING_MODES)}", value)


def _labels(value: object, where: str) -> Labels:
    if value is None or value == IMAGENET:
        return value
    if isinstance(value, list) and value and all(isinstance(name, str) and name for name in value):
        return tuple(value)
    raise _field_error(where, "labels", f"{IMAGENET!r} or a list of non-empty class names", value)
