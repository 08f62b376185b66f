"""The paper's table of configurations (``specs/vgg.yaml``): its columns, checked, as specs.

A table is a document with ``configurations``: each column lists the paper's tokens top to
bottom (body tokens, then FC-N tokens, then an optional soft-max), and ``defaults`` holds the
fields every column shares. Each column must make a valid spec over the table's defaults, so
the table is held to the same semantic and budget checks as a model spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Optional

from vggspec.errors import Problem, SpecError
from vggspec.resources import specs_dir
from vggspec.spec.checks import budget_problems, semantic_problems
from vggspec.spec.model import parse_token
from vggspec.spec.reading import parse_spec_file
from vggspec.spec.schema import TABLE_SCHEMA, schema_problems
from vggspec.spec.yaml_fields import SPEC_DEFAULTS, spec_from_fields
from vggspec.spec.yaml_source import Path as DocPath
from vggspec.spec.yaml_source import YamlDocument, json_path

TABLE_FILE = "vgg.yaml"


@dataclass(frozen=True)
class Table:
    """A checked table of configurations: ``columns[letter]`` lists the paper's tokens top to bottom."""

    source: str
    defaults: dict[str, Any]
    columns: dict[str, list[str]]


def is_table(doc: YamlDocument) -> bool:
    """A document with ``configurations`` is a table of them (as ``specs/vgg.yaml``), not a model spec."""
    return "configurations" in doc.data


def _is_column(tokens: list[str]) -> bool:
    """True for a column in the table's order: body tokens, then FC-N tokens, then an optional soft-max."""
    parsed = [parse_token(t) for t in tokens]
    head = [isinstance(t, (int, str)) for t in parsed]
    first = head.index(True) if True in head else len(parsed)
    widths = parsed[first:-1] if parsed[-1] == "softmax" else parsed[first:]
    return not any(head[:first]) and bool(widths) and all(isinstance(t, int) for t in widths)


def column_fields(defaults: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """A spec mapping for one column (already checked to be in the table's order) over the defaults."""
    parsed = [(token, parse_token(token)) for token in tokens]
    widths = [layer for _, layer in parsed if isinstance(layer, int)]
    return {
        **defaults,
        "layers": [token for token, layer in parsed if not isinstance(layer, (int, str))],
        "fc": widths[:-1],
        "classes": widths[-1],
        "classifier_activation": "softmax" if parsed[-1][1] == "softmax" else None,
    }


def spec_name_for_letter(letter: str) -> str:
    """The name of the spec a column makes: ``A-LRN`` -> ``vgg_a_lrn``."""
    return "vgg_" + letter.lower().replace("-", "_")


def check_table(doc: YamlDocument, source: str) -> Table:
    """A parsed table document -> checked Table, or SpecError with every problem found."""
    problems = doc.problems + schema_problems(doc, TABLE_SCHEMA)
    failed = {p.path for p in problems} | {json_path(path) for path in doc.broken}
    defaults = doc.data.get("defaults", {})
    elsewhere = any(not path.startswith(("$.defaults", "$.configurations.")) for path in failed)
    if elsewhere or not isinstance(defaults, dict):  # no table, or no defaults, to look into
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column)))
    invalid = {
        path.removeprefix("$.defaults.").split(".")[0].split("[")[0]
        for path in failed
        if path.startswith("$.defaults.")
    }
    for letter, tokens in doc.data["configurations"].items():
        if any(
            path == f"$.configurations.{letter}"
            or path.startswith((f"$.configurations.{letter}[", f"$.configurations.{letter}."))
            for path in failed
        ):
            continue
        problems += _column_problems(doc, source, letter, tokens, invalid)
    if problems:
        raise SpecError(sorted(set(problems), key=lambda p: (p.line, p.column, p.path, p.message)))
    return Table(
        source, dict(defaults), {letter: list(tokens) for letter, tokens in doc.data["configurations"].items()}
    )


def _column_problems(
    doc: YamlDocument, source: str, letter: str, tokens: list[str], invalid: set[str]
) -> list[Problem]:
    """One column's problems: its order, then its spec over the table's defaults (budgets only when
    nothing else is wrong). A field the column takes from ``defaults`` is reported there."""
    defaults = doc.data.get("defaults", {})
    if not _is_column(tokens):
        return [
            doc.problem(
                ("configurations", letter),
                "expected convK-N, LRN and maxpool tokens, "
                "then FC-N tokens, then an optional soft-max, received another order",
            )
        ]

    def locate(path: DocPath) -> DocPath:
        if path and path[0] == "layers":
            return ("configurations", letter) + path[1:]
        if path and path[0] in defaults:
            return ("defaults",) + path
        return ("configurations", letter)

    fields = {**SPEC_DEFAULTS, **column_fields(defaults, tokens), "name": spec_name_for_letter(letter)}
    lrn = defaults.get("lrn")
    fields["lrn"] = {**SPEC_DEFAULTS["lrn"], **(lrn if isinstance(lrn, dict) else {})}  # else in ``invalid``
    problems = semantic_problems(doc, fields, locate, invalid)
    if problems or invalid:
        return problems
    return budget_problems(doc, spec_from_fields(fields, f"{source}#{letter}"), locate)


@cache
def load_table(path: Optional[str] = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The table of configurations: (shared defaults, {letter: tokens}). Shipped ``specs/vgg.yaml`` by default."""
    file = Path(path) if path else specs_dir() / TABLE_FILE
    table = check_table(parse_spec_file(file), str(file))
    return table.defaults, table.columns


def configuration_fields(letter: str) -> dict[str, Any]:
    """A spec mapping for one column of the shipped table: its layers and head over the table's defaults."""
    defaults, columns = load_table()
    return {**column_fields(defaults, columns[letter]), "configuration": letter}


def configuration_names() -> list[str]:
    """The letters of the shipped table's columns, in the paper's order."""
    return list(load_table()[1])
