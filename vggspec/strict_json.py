"""JSON that every parser reads: what vggspec prints as JSON and writes into its records.

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON (JavaScript's ``JSON.parse``,
``jq`` and strict parsers refuse them). A non-finite number is written as ``null`` instead; every
output that can hold one says so beside it (``ok: false``, the layer that diverges, ``finite: false``).
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None, in nested dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def dumps(value: Any, indent: int = 2) -> str:
    """``value`` as strict JSON: non-finite numbers as null (``allow_nan=False`` holds it to that)."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False)
