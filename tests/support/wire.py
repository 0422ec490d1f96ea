"""Values built by hand: nested JSON, and protobuf bytes deeper than the Python runtime will encode; replies as a
client reads them."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.message import Message

from pausable.server.encoded import Encoded, field

M = TypeVar("M", bound=Message)


def decoded(reply: Message | Encoded[Any], reply_type: type[M]) -> M:
    """The reply as the client reads it: one the daemon serialized in parts (Encoded) parsed from its bytes."""
    if isinstance(reply, Encoded):
        assert isinstance(reply.message, reply_type)
        return reply_type.FromString(reply.data)
    assert isinstance(reply, reply_type)
    return reply


def nested(levels: int, kind: str = "object", leaf: Any = 1) -> Any:
    data: Any = leaf
    for _ in range(levels):
        data = {"a": data} if kind == "object" else [data]
    return data


def struct_value_bytes(levels: int) -> bytes:
    """A google.protobuf.Value holding `levels` nested objects {"a": {"a": ... 1}}, encoded by hand."""
    value = bytes([2 << 3 | 1]) + b"\x00\x00\x00\x00\x00\x00\xf0?"  # number_value = 1.0
    for _ in range(levels):
        entry = field(1, b"a") + field(2, value)  # FieldsEntry{key, value}
        struct = field(1, entry)  # Struct{fields}
        value = field(5, struct)  # Value{struct_value}
    return value
