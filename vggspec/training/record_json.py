"""Typed values from JSON: a dataclass read back from the JSON object ``dataclasses.asdict`` wrote (run.json).

Every field must be present and of its annotated type (a bool is never taken for a number, an int is
a float); a refusal is a DataError naming the key (nested keys joined by ".") and what it holds.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import typing
from typing import Any, Mapping

from vggspec.errors import DataError, VggspecError


def described(hint: Any, meta: Mapping[str, Any]) -> str:
    """How a message says what a value of type ``hint`` is: 'an integer', 'a string or null'."""
    if "json" in meta:
        return str(meta["json"])
    args = typing.get_args(hint)
    if type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        return described(inner, {}).replace(" or ", ", ") + " or null"
    if dataclasses.is_dataclass(hint) or typing.get_origin(hint) in (dict, collections.abc.Mapping):
        return "a mapping"
    if typing.get_origin(hint) is tuple:
        return "a list of strings"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[hint]


def fits(hint: Any, value: Any) -> bool:
    """``value`` (from JSON) is of type ``hint``: bool is never taken for a number, int is a float."""
    args = typing.get_args(hint)
    if type(None) in args:
        return value is None or fits(next(arg for arg in args if arg is not type(None)), value)
    if dataclasses.is_dataclass(hint) or typing.get_origin(hint) in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if typing.get_origin(hint) is tuple:  # tuple[str, ...]
        return isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return type(value) is hint


def from_json_fields(cls: type, mapping: Mapping[str, Any], prefix: str, what: str) -> Any:
    """A ``cls`` (a dataclass) from ``mapping``: every field present and of its type (keys named with
    ``prefix``, nested keys joined by "."); other keys are ignored."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        key, hint = prefix + item.name, hints[item.name]
        if item.name not in mapping:
            raise DataError(f'{what}: expected the key "{key}", received a record without it')
        value = mapping[item.name]
        if not fits(hint, value):
            raise DataError(
                f'{what}: expected "{key}" to be {described(hint, item.metadata)}, received {json_kind(value)}'
            )
        inner = next((arg for arg in typing.get_args(hint) if arg is not type(None)), hint)
        if value is not None and dataclasses.is_dataclass(inner):
            value = from_json_fields(inner, value, key + ".", what)  # type: ignore[arg-type]
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        elif hint is float:
            value = float(value)
        values[item.name] = value
    try:
        return cls(**values)
    except VggspecError as error:  # a value out of range, e.g. "config.epochs": 0
        raise DataError(f"{what}: {prefix}{error}") from None


def json_kind(value: Any) -> str:
    """What a JSON value is, for a message: 'an integer (3)'."""
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    shown = json.dumps(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return kinds.get(type(value), type(value).__name__) + ("" if value is None else f" ({shown})")
