"""JSON <-> google.protobuf.Value keeps JSON types (an int stays an int)."""

from __future__ import annotations

from pausable.jsonvalue import to_value


def test_value_round_trip_keeps_integers() -> None:
    from pausable.jsonvalue import from_value

    assert from_value(to_value({"a": 3, "b": [1.5, 2], "c": None})) == {"a": 3, "b": [1.5, 2], "c": None}
    assert type(from_value(to_value(3))) is int
