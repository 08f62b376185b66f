"""Check a YAML document against the shipped JSON Schema (Draft 2020-12).

Every schema error becomes a :class:`Problem` worded "expected ..., received ...".
A schema node may carry ``x-expected`` to say what it wants in plain words.

Two types are stricter than JSON Schema's: an ``integer`` is never a float
(``32.0`` is refused where a size is expected: JSON Schema would take it and
every framework would then fail on it), and a ``number`` is finite (``.nan``
and ``.inf`` are refused).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Any, Iterator

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from vggspec.errors import Problem
from vggspec.resources import specs_dir
from vggspec.spec.yaml_source import YamlDocument

SPEC_SCHEMA = "spec.schema.json"
TABLE_SCHEMA = "table.schema.json"


@cache
def load_schema(name: str) -> dict:
    """The schema ``specs/schema/NAME`` as a dict."""
    with open(specs_dir() / "schema" / name, encoding="utf-8") as handle:
        return json.load(handle)


def _is_integer(checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(checker: Any, value: Any) -> bool:
    return _is_integer(checker, value) or (isinstance(value, float) and math.isfinite(value))


@cache
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` as ECMA-262 reads it: its final ``$`` is the end of the string (Python's also matches
    before a final newline, which would let ``"maxpool\\n"`` through)."""
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_StrictValidator = validators.extend(
    Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number}),
)


@cache
def _validator(name: str) -> Any:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    # the table's defaults refer to the spec schema's fields
    registry: Registry = Registry().with_resources(
        (load_schema(other)["$id"], Resource.from_contents(load_schema(other))) for other in (SPEC_SCHEMA, TABLE_SCHEMA)
    )
    return _StrictValidator(schema, registry=registry)


SHOWN_CHARACTERS = 60  # of a long string in a message


def received_text(value: Any) -> str:
    """A value as a message shows it: YAML words for null, booleans and non-finite numbers, long strings cut."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, (dict, list)):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        return f"{kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, str) and len(value) > SHOWN_CHARACTERS:
        return f"{value[:SHOWN_CHARACTERS]!r}… ({len(value):,} characters)"
    return repr(value)


YAML11_BOOLEANS = ("yes", "no", "on", "off", "y", "n")


_TYPE_WORDS: dict[str, str] = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _expected(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "x-expected" in schema and error.validator not in ("type", "minItems", "maxItems", "additionalProperties"):
        return schema["x-expected"]
    value: Any = error.validator_value  # the jsonschema stubs allow 'Unset', never given to an error
    instance: Any = error.instance
    if error.validator == "type":
        kinds = value if isinstance(value, list) else [value]
        if isinstance(instance, float) and not math.isfinite(instance) and "number" in kinds:
            return "a finite number"
        return " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)
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
    if error.validator == "maxLength":
        return f"at most {value} characters"
    if error.validator == "required":
        return "the field " + ", ".join(repr(v) for v in value if v not in instance)
    return error.message


def schema_problems(doc: YamlDocument, schema_name: str) -> list[Problem]:
    """All schema problems of ``doc``, in document order."""
    problems: list[Problem] = []
    for error in _validator(schema_name).iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if doc.is_broken(path):  # already reported while reading the YAML
            continue
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed and (not isinstance(error.schema.get("additionalProperties"), dict)):
                    known = ", ".join(sorted(allowed))
                    problems.append(
                        doc.problem(
                            path + (key,),
                            f"expected a known field ({known}), received the unknown field {received_text(key)}",
                            at_key=True,
                        )
                    )
            continue
        if error.validator == "required":
            missing = [v for v in error.validator_value if v not in error.instance]
            for key in missing:
                problems.append(doc.problem(path, f"expected the field {key!r}, received a mapping without it"))
            continue
        hint = ""
        if (
            error.validator == "type"
            and "boolean" in str(error.validator_value)
            and str(error.instance).lower() in YAML11_BOOLEANS
        ):
            hint = " (YAML 1.2, which vggspec reads, has only true and false as booleans)"
        problems.append(
            doc.problem(path, f"expected {_expected(error)}, received {received_text(error.instance)}" + hint)
        )
    return sorted(problems, key=lambda p: (p.line, p.column))
