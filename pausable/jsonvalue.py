"""JSON data <-> google.protobuf.Value, keeping integers integers.

A Value holds every number as a double. Python code that wrote `3` expects
`3` back, so integral numbers within the exactly-representable range come
back as int; JSON itself cannot tell 3 from 3.0 either.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format, struct_pb2

MAX_EXACT_INT = 2**53


def to_value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    set_value(value, data)
    return value


def set_value(target: struct_pb2.Value, data: Any) -> None:
    """Build `data` in `target` (a field of a larger message, say): no copy of the built Value is made."""
    json_format.ParseDict(data, target)


def from_value(value: struct_pb2.Value) -> Any:
    return integral(json_format.MessageToDict(value))


def integral(data: Any) -> Any:
    if isinstance(data, float) and math.isfinite(data) and data.is_integer() and abs(data) < MAX_EXACT_INT:
        return int(data)
    if isinstance(data, list):
        return [integral(item) for item in data]
    if isinstance(data, dict):
        return {key: integral(item) for key, item in data.items()}
    return data
