"""A spec's fields as its YAML holds them: the defaults, read off :class:`Spec`, and a Spec built back.

The dataclass is the only home of the defaults. The checks merge a file's fields (and a
table's defaults) over them as YAML values: lists for tuples, a mapping for the LRN constants,
strings for layer tokens, so ``yaml_value`` turns a Spec's values into those.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from vggspec.spec.model import LayerToken, LRNParams, Spec, parse_token

# Set by the loader (the file a spec came from), never written in a spec.
NOT_WRITTEN = ("source",)


def yaml_value(value: Any) -> Any:
    """A Spec's value as YAML writes it: tuples as lists, LRNParams as a mapping, layer tokens as text."""
    if isinstance(value, tuple):
        return [yaml_value(item) for item in value]
    if isinstance(value, LRNParams):
        return dataclasses.asdict(value)
    if isinstance(value, typing.get_args(LayerToken)):
        return str(value)
    return value


def _spec_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for field in dataclasses.fields(Spec):
        if field.name in NOT_WRITTEN:
            continue
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = yaml_value(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = yaml_value(field.default_factory())
    return defaults


# Fields a spec may leave out, with their values as YAML writes them (those of keras.applications.VGG16).
SPEC_DEFAULTS: dict[str, Any] = _spec_defaults()


def spec_from_fields(fields: dict[str, Any], source: str) -> Spec:
    """The Spec of checked fields (a file's over SPEC_DEFAULTS); ``source`` says where they came from."""
    return Spec(
        name=fields["name"],
        layers=tuple(parse_token(t) for t in fields["layers"]),  # type: ignore[misc]  # body tokens only
        input_shape=tuple(fields["input_shape"]),
        batch_norm=bool(fields["batch_norm"]),
        activation=fields["activation"],
        include_top=bool(fields["include_top"]),
        fc=tuple(fields["fc"]),
        dropout=float(fields["dropout"]),
        classes=int(fields["classes"]),
        classifier_activation=fields["classifier_activation"],
        pooling=fields["pooling"],
        preprocessing=fields["preprocessing"],
        lrn=LRNParams(**fields["lrn"]),
        configuration=fields["configuration"],
        description=fields["description"],
        source=source,
    )
