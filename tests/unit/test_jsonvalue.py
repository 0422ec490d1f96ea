"""JSON <-> google.protobuf.Value keeps JSON types (an int stays an int)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pausable.jsonvalue import to_value


def test_value_round_trip_keeps_integers() -> None:
    from pausable.jsonvalue import from_value

    assert from_value(to_value({"a": 3, "b": [1.5, 2], "c": None})) == {"a": 3, "b": [1.5, 2], "c": None}
    assert type(from_value(to_value(3))) is int


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_set_value_builds_what_json_format_parse_dict_builds(data: Any) -> None:
    from google.protobuf import json_format, struct_pb2

    expected = struct_pb2.Value()
    json_format.ParseDict(data, expected)
    assert to_value(data).SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def test_set_value_refuses_what_is_not_json() -> None:
    for data in (b"bytes", {"when": object()}, [1, {2, 3}]):
        with pytest.raises(ValueError):
            to_value(data)


def integral(data: Any) -> Any:
    """What the old from_value did after MessageToDict: integral floats within 2**53 become int."""
    if isinstance(data, float) and math.isfinite(data) and data.is_integer() and abs(data) < 2**53:
        return int(data)
    if isinstance(data, list):
        return [integral(item) for item in data]
    if isinstance(data, dict):
        return {key: integral(item) for key, item in data.items()}
    return data


@given(JSON)
def test_from_value_reads_what_message_to_dict_reads(data: Any) -> None:
    from google.protobuf import json_format

    from pausable.jsonvalue import from_value

    value = to_value(data)
    try:
        expected = integral(json_format.MessageToDict(value))
    except ValueError:  # NaN or infinity somewhere
        with pytest.raises(ValueError):
            from_value(value)
        return
    assert json.dumps(from_value(value)) == json.dumps(expected)  # equal, in the same order, ints as ints
