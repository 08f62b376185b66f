"""Load a spec by path or shipped name, check it, and return a frozen :class:`Spec`.

Checking has two layers: the JSON Schema (types, known fields, token syntax) and the
semantic and budget checks (:mod:`vggspec.spec.checks`) on the fields merged over the
defaults (:mod:`vggspec.spec.yaml_fields`) and, for ``configuration: X``, over column X of
the paper's table (:mod:`vggspec.spec.table`). Every problem is collected and raised
together as one :class:`SpecError`; budgets are checked only on a spec that passes the rest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Union

from vggspec.errors import Problem, SpecError
from vggspec.spec.checks import Locate, budget_problems, semantic_problems
from vggspec.spec.model import Spec
from vggspec.spec.reading import parse_spec_file
from vggspec.spec.schema import SPEC_SCHEMA, schema_problems
from vggspec.spec.shipped import resolve
from vggspec.spec.table import (
    TABLE_FILE,
    Table,
    check_table,
    configuration_fields,
    configuration_names,
    is_table,
    spec_name_for_letter,
)
from vggspec.spec.yaml_fields import SPEC_DEFAULTS, spec_from_fields, yaml_value
from vggspec.spec.yaml_source import Path as DocPath
from vggspec.spec.yaml_source import YamlDocument

# Fields spec_to_mapping leaves out: the layers are written out instead of a configuration,
# and a description or a source says where a spec came from, not what it builds.
_NOT_MAPPED = ("configuration", "description", "source")


def _spec_locator(doc: YamlDocument) -> Locate:
    """Fields a spec takes from its configuration are reported at ``configuration``."""

    def locate(path: DocPath) -> DocPath:
        if path and path[0] not in doc.data and "configuration" in doc.data:
            return ("configuration",)
        return path

    return locate


def _table_given_as_spec(doc: YamlDocument, source: str) -> SpecError:
    """A table where a model spec is expected: its own problems if it has any, else a pointer to its columns."""
    check_table(doc, source)
    columns = ", ".join(doc.data["configurations"])
    return SpecError(
        [
            doc.problem(
                (),
                f"expected a model spec (name, and configuration or layers), received a "
                f"table of configurations ({columns}); name one of them instead (e.g. "
                f"`configuration: {next(iter(doc.data['configurations']))}` in a spec)",
            )
        ]
    )


def _base_fields(doc: YamlDocument, invalid: set[str], problems: list[Problem]) -> dict[str, Any]:
    """The fields a spec's own are merged over: the defaults, and its configuration's column if it
    names a known one. Adds to ``problems`` when it gives both configuration and layers, or neither."""
    data = doc.data
    has_configuration, has_layers = "configuration" in data, "layers" in data
    base: dict[str, Any] = dict(SPEC_DEFAULTS)
    if has_configuration and has_layers:
        problems.append(
            doc.problem(("configuration",), "expected either configuration or layers, received both", at_key=True)
        )
    elif not has_configuration and not has_layers:
        problems.append(
            doc.problem(
                (), "expected the field 'configuration' (a column of the paper's table) or 'layers', received neither"
            )
        )
    elif has_configuration and "configuration" not in invalid:
        letters = configuration_names()
        if data["configuration"] not in letters:
            problems.append(
                doc.problem(
                    ("configuration",),
                    "expected one of " + ", ".join(letters) + f", received {data['configuration']!r}",
                )
            )
        else:
            base.update(configuration_fields(data["configuration"]))
    return base


def check_document(doc: YamlDocument, source: str) -> Spec:
    """A parsed spec document -> checked Spec, or SpecError with every problem found."""
    data = doc.data
    if is_table(doc) and "name" not in data:
        raise _table_given_as_spec(doc, source)
    problems = doc.problems + schema_problems(doc, SPEC_SCHEMA)
    invalid = {str(p.path[2:]).split(".")[0].split("[")[0] for p in problems if p.path.startswith("$.")}
    invalid |= {str(path[0]) for path in doc.broken if path}
    base = _base_fields(doc, invalid, problems)
    fields: dict[str, Any] = {}
    if "layers" in base or "layers" in data:
        lrn = {**base.get("lrn", {}), **(data.get("lrn") if isinstance(data.get("lrn"), dict) else {})}
        fields = {**base, **data, "lrn": lrn}
        problems += semantic_problems(doc, fields, _spec_locator(doc), invalid)
    if problems:
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column)))
    spec = spec_from_fields(fields, source)
    problems = budget_problems(doc, spec, _spec_locator(doc))
    if problems:
        raise SpecError(problems)
    return spec


def spec_from_mapping(mapping: dict[str, Any], source: str = "<mapping>") -> Spec:
    """Check a spec given as a Python mapping (as the YAML would hold it)."""
    if not isinstance(mapping, dict):
        raise SpecError(
            [Problem(source, 0, 0, "$", f"expected a mapping of fields, received {type(mapping).__name__}")]
        )
    return check_document(YamlDocument(source, dict(mapping), {(): (0, 0)}), source)


def load_document(path_or_name: Union[str, Path]) -> Union[Spec, Table]:
    """A checked spec, or a checked table when the file is one (``vggspec validate`` takes both)."""
    path, letter = resolve(path_or_name)
    if letter is not None:
        return load_spec(letter)
    doc = parse_spec_file(path)  # type: ignore[arg-type]  # resolve gives a path when it gives no letter
    if is_table(doc) and "name" not in doc.data:
        return check_table(doc, str(path))
    return check_document(doc, str(path))


def load_spec(path_or_name: Union[str, Path]) -> Spec:
    """Load and check a spec: a YAML path, a shipped name (``vgg16``, ``vgg19_bn``) or a letter of the table (``D``)."""
    path, letter = resolve(path_or_name)
    if letter is not None:
        return spec_from_mapping(
            {"name": spec_name_for_letter(letter), "configuration": letter}, f"{TABLE_FILE}#{letter}"
        )
    return check_document(parse_spec_file(path), str(path))  # type: ignore[arg-type]


def spec_to_mapping(spec: Spec) -> dict[str, Any]:
    """The YAML fields of a spec (``layers`` written out); ``spec_from_mapping`` reads it back."""
    return {
        field.name: yaml_value(getattr(spec, field.name))
        for field in dataclasses.fields(spec)
        if field.name not in _NOT_MAPPED
    }
