"""Replies serialized off the event loop, their large values spliced in as bytes.

gRPC serializes a reply on the event loop, in one C call that holds the GIL:
6-7 ms for a GetOperationResponse holding a 0.86 MiB input and result (2
cores, unloaded; 1.5-2x that under load), 3.6 ms for a WatchResponse. A
reply holding large values is instead made in a thread as bytes (`Encoded`):
its small fields serialized as a message, each large value's bytes (made once
per value, see parsed.ParsedValues) appended as a field of its own, which
protobuf's wire format allows in any order. The servicers return it, and the
handlers' serializers (`add_servicer`) pass its bytes through; small replies
stay messages, which gRPC serializes as before.

Nested messages are written whole, with their length before them, never as a
second occurrence of the same field for the parser to merge: protobuf.js (the
Node client) replaces an embedded message seen twice instead of merging it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from pausable.jsonvalue import set_value
from pausable.server import limits

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Encoded(Generic[M]):
    """A reply already serialized (`data`), and the same reply without its large values (`message`): what
    interceptors and logs read, ids and states."""

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


PIECE_BYTES = 32 * 1024
_STRUCT_VALUE = struct_pb2.Value.DESCRIPTOR.fields_by_name["struct_value"].number
_LIST_VALUE = struct_pb2.Value.DESCRIPTOR.fields_by_name["list_value"].number
_MEMBERS = struct_pb2.Struct.DESCRIPTOR.fields_by_name["fields"].number  # map entries: key 1, value 2
_ITEMS = struct_pb2.ListValue.DESCRIPTOR.fields_by_name["values"].number


def value_bytes(data: Any) -> bytes:
    """JSON `data` as a serialized google.protobuf.Value, made in pieces of at most about PIECE_BYTES of JSON: an object
    or list larger than that is written member by member, each member's Value serialized on its own. Serializing a
    Value of 0.86 MiB is one C call holding the GIL, so the event loop, for 3-4 ms; a piece of 32 KiB, about 0.1 ms.
    Building the Value (jsonvalue.set_value) is Python code either way, and this adds about the walk of a size check."""
    if isinstance(data, dict) and limits.json_bytes_over(data, PIECE_BYTES):
        members = (field(_MEMBERS, field(1, key.encode()) + field(2, value_bytes(item))) for key, item in data.items())
        return field(_STRUCT_VALUE, b"".join(members))
    if isinstance(data, list) and limits.json_bytes_over(data, PIECE_BYTES):
        return field(_LIST_VALUE, b"".join(field(_ITEMS, value_bytes(item)) for item in data))
    value = struct_pb2.Value()
    set_value(value, data)
    return value.SerializeToString()


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


def _accepting(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    return handler._replace(response_serializer=accepting_encoded(handler.response_serializer))  # type: ignore[attr-defined]


class _AcceptingGeneric(grpc.GenericRpcHandler):
    """A generic handler (protoc's registration before grpcio 1.63 has only these) whose handlers accept `Encoded`
    replies; each method's handler is made once."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self.inner = inner
        self._made: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self.inner.service(handler_call_details)
        if handler is None:
            return None
        made = self._made.get(handler_call_details.method)
        if made is None or made[0] is not handler:
            made = self._made[handler_call_details.method] = (handler, _accepting(handler))
        return made[1]


class _Registrations:
    """Passes protoc's `add_*Servicer_to_server` registration of a service on to the server, each handler's response
    serializer accepting `Encoded` replies."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers(tuple(_AcceptingGeneric(handler) for handler in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        accepting = {name: _accepting(handler) for name, handler in handlers.items()}
        self.server.add_registered_method_handlers(service, accepting)  # type: ignore[attr-defined]  # not in the stubs


def add_servicer(register: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server) -> None:
    """`register(servicer, server)` (protoc's add_*Servicer_to_server), each handler's response serializer accepting
    `Encoded` replies."""
    register(servicer, _Registrations(server))
