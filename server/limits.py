"""Limits on what enters the daemon: JSON size and nesting depth, and requests protobuf cannot decode.

Each limit is a setting (pausable.config: max_json_depth, max_input_bytes,
max_result_bytes, max_workflow_bytes, list_page_bytes, offload_json_bytes,
replay_page_bytes);
`app.start` installs them with `configure`. A breach answers INVALID_ARGUMENT
naming the setting, except a step result: that one fails its operation
(RESULT_TOO_LARGE, RESULT_TOO_DEEP), so what is stored can always be read,
listed and streamed.

Why 32 levels: a JSON object level is three protobuf message levels inside a
google.protobuf.Value (Value, Struct, the map entry); a result 32 levels deep
inside an Operation inside a WatchEventsResponse is just within protobuf's
decoding limit of 100, in every client.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from pausable.server import jsontext
from pausable.server.errors import InvalidArgument
from pausable.server.handlers import HandlerWrapper


@dataclass(frozen=True)
class Limits:
    max_json_depth: int = 32
    max_input_bytes: int = 1 << 20
    max_result_bytes: int = 1 << 20
    max_workflow_bytes: int = 1 << 20
    list_page_bytes: int = 4 << 20
    offload_json_bytes: int = 8 << 10
    replay_page_bytes: int = 2 << 20

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


current = Limits()


def configure(limits: Limits) -> None:
    """Install the daemon's limits (app.start); the servicers and convert.py read `limits.current`."""
    global current
    current = limits


def json_depth(data: Any, stop_after: int | None = None) -> int:
    """How deeply objects and lists nest in `data` (a scalar is 0, `{"a": 1}` is 1); without recursion.

    With `stop_after`, returns as soon as the depth is known to exceed it.
    """
    deepest = 0
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if stop_after is not None and deepest > stop_after:
                return deepest
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def json_bytes_over(data: Any, limit: int) -> bool:
    """Whether `data` as compact JSON is longer than about `limit` bytes (strings by their length, other scalars as a
    few bytes); without recursion, and it stops as soon as it knows, so judging a large value costs no more than
    walking `limit` bytes of it."""
    return json_bytes_left(data, limit) < 0


def json_bytes_left(data: Any, budget: int) -> int:
    """`budget` less the size of `data` as compact JSON, estimated as json_bytes_over does; negative (not exact) as
    soon as it is known to be over. A dict's string and scalar members are counted where they are met, not pushed and
    popped: a Celery message body is mostly those (its chain's signatures and headers), and judging one for the
    offload (celery_message.encoded) cost 13.6 us a message before, 10.2 after."""
    pending: list[Any] = [data]
    push = pending.append
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            budget -= 2 + 2 * len(item)  # braces, and a colon and a comma per member
            for key, value in item.items():
                if isinstance(value, str):
                    budget -= len(key) + len(value) + 4
                elif isinstance(value, (dict, list, tuple)):
                    budget -= len(key) + (2 if value else 4)  # an empty one's brackets too
                    if value:
                        push(value)
                else:
                    budget -= len(key) + 6  # a number, true, false, null
                if budget < 0:
                    return budget
        elif isinstance(item, (list, tuple)):  # a tuple: what Celery's message body is made of
            budget -= 2 + len(item)  # brackets and commas
            if budget < 0:
                return budget
            pending.extend(item)
        elif isinstance(item, str):
            budget -= len(item) + 2
        else:
            budget -= 4  # a number, true, false, null
        if budget < 0:
            return budget
    return budget


def value_bytes_over(value: struct_pb2.Value, limit: int) -> bool:
    """json_bytes_over for a google.protobuf.Value, walking at most about `limit` bytes of it: Value.ByteSize() walks
    the whole value in one C call that holds the GIL (2.8 ms for 0.86 MiB, on the event loop)."""
    budget = limit
    pending = [value]
    while pending:
        item = pending.pop()
        kind = item.WhichOneof("kind")
        if kind == "struct_value":
            fields = item.struct_value.fields
            budget -= 2 + 2 * len(fields)
            for key, member in fields.items():
                if budget < 0:
                    return True
                budget -= len(key) + 2
                pending.append(member)
        elif kind == "list_value":
            items = item.list_value.values
            budget -= 2 + len(items)
            for member in items:
                if budget < 0:
                    return True
                pending.append(member)
        elif kind == "string_value":
            budget -= len(item.string_value) + 2
        else:
            budget -= 4  # a number, true, false, null
        if budget < 0:
            return True
    return False


def too_deep(data: Any, limits: Limits | None = None) -> bool:
    limit = (limits or current).max_json_depth
    return json_depth(data, stop_after=limit) > limit


def check_depth(field: str, data: Any) -> Any:
    limit = current.max_json_depth
    if json_depth(data, stop_after=limit) > limit:
        raise InvalidArgument(
            f"{field} nests objects and lists deeper than {limit} levels (the limit, setting max_json_depth): "
            "flatten it or pass a reference to the data instead"
        )
    return data


def check_bytes(field: str, size: int, limit: int, setting: str) -> None:
    if size > limit:
        raise InvalidArgument(
            f"{field} is {size} bytes of JSON; the limit is {limit} (setting {setting}): pass a reference to large data instead"
        )


def parse_json(field: str, text: str, limit: int, setting: str) -> Any:
    """JSON text within `limit` bytes and max_json_depth levels, parsed; InvalidArgument otherwise."""
    check_bytes(field, len(text.encode()), limit, setting)
    try:
        data = json.loads(text)
    except RecursionError:
        data = _deeper_than_limit()
    except ValueError as error:
        raise InvalidArgument(f"{field} must be JSON text: {error}") from None
    return check_depth(field, data)


def _deeper_than_limit() -> Any:
    data: Any = 0
    for _ in range(current.max_json_depth + 1):
        data = [data]
    return data


RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
RESULT_TOO_DEEP = "RESULT_TOO_DEEP"


def result_problem(text: str) -> tuple[str, str] | None:
    """Why a step's result_json cannot be stored: (error code, message) for FailOperation, or None when it can.

    Text that is not JSON at all is the caller's mistake (InvalidArgument), not the step's.
    """
    return checked_result(text)[0]


def checked_result(text: str) -> tuple[tuple[str, str] | None, Any]:
    """`result_problem` of the text, and the value it parsed (None when there is a problem): the store keeps that
    value for the operation's event snapshots, so a large result is parsed once (parsed.ParsedValues)."""
    problem, decoded = decoded_result(text)
    return problem, None if decoded is None else decoded.data


def decoded_result(text: str) -> tuple[tuple[str, str] | None, jsontext.Decoded | None]:
    """`checked_result`, with the value as jsontext.decode made it (whether it holds no NaN or infinity too)."""
    limits = current
    size = len(text.encode())
    if size > limits.max_result_bytes:
        message = (
            f"the step's result is {size} bytes of JSON; the limit is {limits.max_result_bytes} (setting max_result_bytes): "
            "return a reference to large data (a path, a key) instead"
        )
        return (RESULT_TOO_LARGE, message), None
    try:
        decoded = jsontext.decode(text)
    except RecursionError:
        decoded = jsontext.Decoded(_deeper_than_limit(), True)
    except ValueError as error:
        raise InvalidArgument(f"result_json must be JSON text: {error}") from None
    if too_deep(decoded.data, limits):
        message = (
            f"the step's result nests objects and lists deeper than {limits.max_json_depth} levels "
            "(setting max_json_depth): return flatter data"
        )
        return (RESULT_TOO_DEEP, message), None
    return None, decoded


# -- requests protobuf cannot decode -------------------------------------------


@dataclass(frozen=True)
class Undecodable:
    """What the guarded deserializer hands the servicer instead of raising (which grpc answers UNKNOWN)."""

    reason: str

    @property
    def message(self) -> str:
        hint = ""
        if "Depth" in self.reason or "depth" in self.reason:
            hint = (
                f": it nests deeper than protobuf allows; JSON values (input, schemas) may nest at most "
                f"{current.max_json_depth} levels (setting max_json_depth)"
            )
        return f"the request could not be decoded ({self.reason}){hint}"


def _guarded(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def guarded(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, RecursionError, ValueError) as error:
            return Undecodable(str(error) or type(error).__name__)

    return guarded


class DecodeGuard(HandlerWrapper):
    """Answers a request protobuf cannot decode (too deep, malformed) with INVALID_ARGUMENT instead of UNKNOWN.

    The outermost handler wrapper: it wraps the handler the others return. Requests that stream are left as they are.
    """

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.request_streaming or handler.request_deserializer is None:
            return handler
        return self._guard(handler)

    @staticmethod
    def _guard(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        assert handler.request_deserializer is not None
        deserialize = _guarded(handler.request_deserializer)
        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, Undecodable):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, handler.response_serializer)
        streaming: Any = handler.unary_stream
        if streaming is None:
            return handler
        if inspect.isasyncgenfunction(streaming):

            async def unary_stream_gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                if isinstance(request, Undecodable):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
                async for response in streaming(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(unary_stream_gen, deserialize, handler.response_serializer)

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return await streaming(request, context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, deserialize, handler.response_serializer)
