"""Every JSON output goes through vggspec.strict_json: whatever numbers it holds, a strict parser reads it."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from vggspec.strict_json import dumps, finite_or_none

numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**63), 2**63)
values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=30,
)


def strict_loads(text: str):
    """What JSON.parse, jq or any strict parser accepts: no NaN, Infinity or -Infinity."""
    return json.loads(text, parse_constant=lambda word: (_ for _ in ()).throw(ValueError(f"not JSON: {word}")))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(value=values)
def test_any_value_with_any_numbers_is_strict_json_with_non_finite_numbers_as_null(value):
    parsed = strict_loads(dumps(value))  # refuses NaN and Infinity
    assert parsed == json.loads(json.dumps(finite_or_none(value)))


def test_a_non_finite_number_becomes_null_and_finite_ones_stay():
    assert strict_loads(dumps({"a": [1.5, math.nan, -math.inf, (2, math.inf)], "b": 3})) == {
        "a": [1.5, None, None, [2, None]],
        "b": 3,
    }
