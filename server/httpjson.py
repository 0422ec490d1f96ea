"""JSON for the HTTP gateway: requests from a URL's path and query and a body; replies and events in the proto3 JSON
mapping; gRPC status codes as HTTP ones.

The mapping is protobuf's own (`json_format`): camelCase names, enums by name, int64 as strings, every field
printed. One difference, on purpose: values are written as the JSON text the store keeps (an operation's `input`
and `result` from `input_json` / `result_json`, a step record's `result` and `previous`, spliced in whole with
`orjson.Fragment`), so a step's result keeps its types (google.protobuf.Value's mapping carries every number as a
double); the `…Json` texts are then left out, being the same thing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from pausable.server import limits
from pausable.server.encoded import Encoded

M = TypeVar("M", bound=Message)

# As grpc-gateway and Google's APIs map them (google/rpc/code.proto gives the HTTP equivalent of each code).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
# Fields written as the JSON text the store keeps, from their `…Json` twin (Operation's input and result, a
# StepRecord's result and the previous input it replaced).
STORED_VALUES = ("input", "result", "previous")


class BadRequest(Exception):
    """The request cannot become the method's message (INVALID_ARGUMENT); the text says what to send instead."""


def error_body(code: grpc.StatusCode, message: str) -> bytes:
    """The error as Google's HTTP APIs write it: {"error": {"code": 404, "status": "NOT_FOUND", "message": ...}}."""
    return orjson.dumps({"error": {"code": HTTP_STATUS.get(code, 500), "status": code.name, "message": message}})


def request_from(message_type: type[M], path: Mapping[str, str], query: Iterable[tuple[str, str]] = (), body: bytes = b"") -> M:
    """The method's request message: the body's fields, then the query's, then the path's (which win)."""
    data: dict[str, Any] = _body(body) if body.strip() else {}
    fields = _fields_by_any_name(message_type)
    for key, value in query:
        name, _, rest = key.partition("[")
        field = fields.get(name)
        if field is None:
            known = ", ".join(sorted(f.json_name for f in message_type.DESCRIPTOR.fields))
            raise BadRequest(f"unknown query parameter {key[:80]!r}; {message_type.DESCRIPTOR.name} takes: {known}")
        if rest:
            if not (_is_map(field) and rest.endswith("]")):
                raise BadRequest(f"query parameter {key[:80]!r}: only map fields take [key], as in labels[team]=data")
            data.setdefault(field.name, {})[rest[:-1]] = value
        elif _is_map(field):
            raise BadRequest(f"query parameter {key[:80]!r} is a map: give each entry as {field.name}[key]=value")
        elif field.is_repeated:
            data.setdefault(field.name, []).append(_scalar(field, value))
        else:
            data[field.name] = _scalar(field, value)
    data.update(path)
    try:
        return json_format.ParseDict(
            data, message_type(), ignore_unknown_fields=False, max_recursion_depth=limits.current.max_json_depth + 8
        )
    except json_format.ParseError as error:
        raise BadRequest(
            f"{error} Send {message_type.DESCRIPTOR.name}'s fields in the proto3 JSON mapping: names in camelCase or as in "
            "the .proto, enums by name, timestamps in RFC 3339 (2026-01-02T15:04:05Z), durations as 1.5s"
        ) from None


def _body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise BadRequest(f"the body is not valid JSON ({type(error).__name__}: {str(error)[:200]}); send a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body is a JSON {type(data).__name__}; send a JSON object with the request's fields")
    if limits.too_deep(data):
        raise BadRequest(
            f"the body nests objects and lists deeper than {limits.current.max_json_depth} levels (the limit, setting "
            "max_json_depth): flatten it or pass a reference to the data instead"
        )
    return data


def _fields_by_any_name(message_type: type[Message]) -> dict[str, Any]:
    fields = message_type.DESCRIPTOR.fields
    return {**{field.json_name: field for field in fields}, **{field.name: field for field in fields}}


def _is_map(field: Any) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _scalar(field: Any, value: str) -> Any:
    """A query's text as json_format takes the field: true/false for booleans, the text for the rest."""
    if field.type != FieldDescriptor.TYPE_BOOL:
        return value
    if value.lower() in ("true", "1", ""):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f"query parameter {field.json_name} is true or false, not {value[:40]!r}")


def message_of(reply: Message | Encoded[Any]) -> Message:
    """The reply as a message: an `Encoded` one parsed from its bytes (its `message` leaves the large values out)."""
    if isinstance(reply, Encoded):
        return type(reply.message).FromString(reply.data)
    return reply


def to_json(reply: Message | Encoded[Any]) -> bytes:
    """The reply (or a stream's message) in the proto3 JSON mapping, values as stored (see the module's docstring)."""
    data = json_format.MessageToDict(message_of(reply), always_print_fields_with_no_presence=True)
    _values_as_stored(data)
    return orjson.dumps(data)


def _values_as_stored(data: Any) -> None:
    """Values anywhere in `data` (an operation, a step record, in a reply, an event or a page) become their stored
    JSON texts: `resultJson` is written as `result`, and so on."""
    if isinstance(data, list):
        for item in data:
            _values_as_stored(item)
        return
    if not isinstance(data, dict):
        return
    for name in STORED_VALUES:
        text = data.pop(f"{name}Json", None)
        if text:
            data[name] = orjson.Fragment(text)
    for key, value in data.items():
        if isinstance(value, (dict, list)) and key not in (*STORED_VALUES, "inputSchema", "labels"):
            _values_as_stored(value)
