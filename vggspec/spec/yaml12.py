"""The YAML 1.2 core schema: the tag a plain scalar resolves to, and the value a scalar gives.

PyYAML resolves plain scalars by YAML 1.1, where ``yes``, ``no`` and ``on`` are booleans,
``010`` is eight and ``1:30`` is a number; users of JSON, editors and every other modern tool
expect YAML 1.2 (https://yaml.org/spec/1.2.2/#1032-tag-resolution), which is what this gives.
"""

from __future__ import annotations

import math
import re
from typing import Any

from yaml.resolver import BaseResolver

STR, INT, FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
BOOL, NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
MAP, SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"

# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class Yaml12Resolver(BaseResolver):
    """Implicit tags of plain scalars as the YAML 1.2 core schema has them (not PyYAML's YAML 1.1)."""


for _tag, _pattern, _first in (
    (NULL, _NULL, ["~", "n", "N", ""]),
    (BOOL, _BOOL, list("tTfF")),
    (INT, _INT, list("-+0123456789")),
    (FLOAT, _FLOAT, list("-+0123456789.")),
):
    Yaml12Resolver.add_implicit_resolver(_tag, _pattern, _first)


def scalar_value(tag: str, text: str) -> Any:
    """The value of a scalar with a core tag (YAML 1.2 rules); ValueError when ``text`` is not one."""
    if tag == STR:
        return text
    if tag == NULL and _NULL.match(text):
        return None
    if tag == BOOL and _BOOL.match(text):
        return text.lower() == "true"
    if tag == INT and _INT.match(text):
        base = 8 if text.startswith("0o") else 16 if text.startswith("0x") else 10
        return int(text[2:] if base != 10 else text, base)
    if tag == FLOAT and _FLOAT.match(text):
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        return math.nan if lowered == ".nan" else float(text)
    raise ValueError(text)
