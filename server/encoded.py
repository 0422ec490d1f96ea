"""Replies serialized off the event loop, their large values spliced in as bytes.

gRPC serializes a reply on the event loop, in one C call that holds the GIL:
6-7 ms for a GetOperationResponse holding a 0.86 MiB input and result (2
cores, unloaded; 1.5-2x that under load), 3.6 ms for a WatchResponse. A
reply holding large values is instead made in a thread as bytes (`Encoded`):
its small fields serialized as a message, each large value's bytes (made once
per value, see parsed.ParsedValues) appended as a field of its own, which
protobuf's wire format allows in any order. The servicers return it, and the
handlers' serializers (`accepting_encoded`, see handlers.Registrar) pass its
bytes through; small replies stay messages, which gRPC serializes as before.

Nested messages are written whole, with their length before them, never as a
second occurrence of the same field for the parser to merge: protobuf.js (the
Node client) replaces an embedded message seen twice instead of merging it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Encoded(Generic[M]):
    """A reply already serialized (`data`), and the same reply without its large values (`message`): what the
    handler wrappers and logs read, ids and states."""

    message: M
    data: bytes


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a message, string or bytes) as protobuf's wire format has it."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def message_with(message: Message, fields: Iterable[tuple[str, bytes]]) -> bytes:
    """`message` serialized, followed by each named message field's serialized value; `message` must not hold those
    fields itself."""
    by_name = message.DESCRIPTOR.fields_by_name
    return b"".join([message.SerializeToString(), *(field(by_name[name].number, data) for name, data in fields)])


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def accepting_encoded(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    """A response serializer that passes an `Encoded` reply's bytes through and serializes messages with `serialize`
    (None: a reply is bytes already)."""

    def serializer(reply: Any) -> bytes:
        if type(reply) is Encoded:
            return reply.data
        return reply if serialize is None else serialize(reply)

    return serializer
