"""Check a YAML document against the shipped JSON Schema (Draft 2020-12).

Every schema error becomes a :class:`Problem` worded "expected ..., received ...".
A schema node may carry ``x-expected`` to say what it wants in plain words.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from vggspec.errors import Problem
from vggspec.resources import specs_dir
from vggspec.spec.yaml_source import YamlDocument

SPEC_SCHEMA = "spec.schema.json"
TABLE_SCHEMA = "table.schema.json"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The schema ``specs/schema/NAME`` as a dict."""
    with open(specs_dir() / "schema" / name, encoding="utf-8") as handle:
        return json.load(handle)


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _received(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        return f"{kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    return repr(value)


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


def _expected(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "x-expected" in schema and error.validator not in ("type", "minItems", "maxItems", "additionalProperties"):
        return schema["x-expected"]
    value = error.validator_value
    if error.validator == "type":
        kinds = value if isinstance(value, list) else [value]
        return " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
    if error.validator == "enum":
        return "one of " + ", ".join("null" if v is None else str(v) for v in value)
    if error.validator == "minimum":
        return f"a value ≥ {value}"
    if error.validator == "exclusiveMinimum":
        return f"a value > {value}"
    if error.validator == "maximum":
        return f"a value ≤ {value}"
    if error.validator == "exclusiveMaximum":
        return f"a value < {value}"
    if error.validator in ("minItems", "maxItems"):
        if schema.get("minItems") == schema.get("maxItems"):
            return f"a list of exactly {value} items" + (f" {schema['x-expected']}" if "x-expected" in schema else "")
        word = "at least" if error.validator == "minItems" else "at most"
        return f"a list of {word} {value} items"
    if error.validator == "minProperties":
        return f"at least {value} entries"
    if error.validator == "pattern":
        return f"a string matching {value}"
    if error.validator == "required":
        return "the field " + ", ".join(repr(v) for v in value if v not in error.instance)
    return error.message


def schema_problems(doc: YamlDocument, schema_name: str) -> list[Problem]:
    """All schema problems of ``doc``, in document order."""
    problems: list[Problem] = []
    for error in _validator(schema_name).iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed and (not isinstance(error.schema.get("additionalProperties"), dict)):
                    known = ", ".join(sorted(allowed))
                    problems.append(doc.problem(path + (key,), f"expected a known field ({known}), "
                                                               f"received the unknown field {key!r}", at_key=True))
            continue
        if error.validator == "required":
            missing = [v for v in error.validator_value if v not in error.instance]
            for key in missing:
                problems.append(doc.problem(path, f"expected the field {key!r}, received a mapping without it"))
            continue
        problems.append(doc.problem(path, f"expected {_expected(error)}, received {_received(error.instance)}"))
    return sorted(problems, key=lambda p: (p.line, p.column))
