"""Values built by hand: nested JSON, and protobuf bytes deeper than the Python runtime will encode."""

from __future__ import annotations

from typing import Any


def nested(levels: int, kind: str = "object", leaf: Any = 1) -> Any:
    data: Any = leaf
    for _ in range(levels):
        data = {"a": data} if kind == "object" else [data]
    return data


def varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def struct_value_bytes(levels: int) -> bytes:
    """A google.protobuf.Value holding `levels` nested objects {"a": {"a": ... 1}}, encoded by hand."""
    value = varint(2 << 3 | 1) + b"\x00\x00\x00\x00\x00\x00\xf0?"  # number_value = 1.0
    for _ in range(levels):
        entry = field_bytes(1, b"a") + field_bytes(2, value)  # FieldsEntry{key, value}
        struct = field_bytes(1, entry)  # Struct{fields}
        value = field_bytes(5, struct)  # Value{struct_value}
    return value
