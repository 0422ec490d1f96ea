"""Conversions between the store's snapshots and the pausable.v1 messages."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from pausable.jsonvalue import set_value
from pausable.server import limits, parsed
from pausable.server.domain import Event, Operation
from pausable.server.offload import off_loop_if
from pausable.server.states import EventType, State
from pausable.v1 import operation_pb2 as pb

log = logging.getLogger("pausable.server")
Message = TypeVar("Message")


def _timestamp(epoch: float | None) -> timestamp_pb2.Timestamp | None:
    if epoch is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(epoch * 1e9))
    return stamp


def _set_time(field: timestamp_pb2.Timestamp, epoch: float | None) -> None:
    """Set a message's time field in place (a Timestamp passed to the constructor is built, then copied)."""
    if epoch is not None:
        field.FromNanoseconds(int(epoch * 1e9))


# protoc's .pyi types enum fields as the enum's class but `Value()` as int; at run
# time both are the same int, so the casts below only tell mypy so.


def state_to_pb(state: str) -> pb.OperationState:
    return cast(pb.OperationState, pb.OperationState.Value(f"OPERATION_STATE_{state}"))


def state_from_pb(value: int) -> State:
    return State(pb.OperationState.Name(value).removeprefix("OPERATION_STATE_"))


def operation_to_pb(operation: Operation, full: bool = True) -> pb.Operation:
    """The operation as a message; without `full` (ListOperations' BASIC view), input and result are left out."""
    message = pb.Operation()
    operation_into(message, operation, full)
    return message


def operation_into(message: pb.Operation, operation: Operation, full: bool = True) -> None:
    """Fill `message` (empty, usually a field of the reply) with the operation: the values are built in place, because
    copying a message that holds a 1 MiB value (building a reply around it, CopyFrom) is one C call that holds the
    GIL, and so the event loop, for 13-50 ms on 2 cores."""
    message.MergeFrom(
        pb.Operation(
            id=operation.id,
            workflow=operation.workflow,
            state=state_to_pb(operation.state),
            current_step=operation.current_step,
            total_steps=operation.step_count,
            step_number=operation.step_number,
            current_step_name=operation.current_step_name,
            progress=operation.progress,
            progress_message=operation.progress_message,
            requester=operation.requester,
            labels=operation.labels,
            last_seq=operation.last_seq,
            attempt=operation.attempt,
        )
    )
    _set_time(message.create_time, operation.create_time)
    _set_time(message.update_time, operation.update_time)
    _set_time(message.end_time, operation.end_time)
    _set_time(message.lease_expire_time, operation.lease_expire_time)
    if full and operation.input_json is not None:
        input_text = operation.input_json
        if stored_value(
            message.input, operation.id, "input", lambda: parsed.inputs.parse(operation.id, input_text), parsed.inputs
        ):
            message.input_json = input_text
    if full and operation.result is not None:
        result = operation.result
        if stored_value(message.result, operation.id, "result", lambda: result, parsed.results):
            message.result_json = parsed.results.compact_json(operation.id, result)
    if operation.error:
        message.error.MergeFrom(pb.OperationError(**operation.error))
        if "step_number" not in operation.error:  # errors stored before user step numbering counted every plan entry
            message.error.step_number = message.error.step + 1 if message.error.step >= 0 else 0


def stored_value(
    target: struct_pb2.Value, operation_id: str, field: str, load: Callable[[], Any], kept: parsed.ParsedValues
) -> bool:
    """Build a stored JSON value in `target`; one that cannot be a Value every client decodes (stored before the
    limits, nested deeper than max_json_depth) is left out with a warning, so reads and streams never fail on it.
    A value `kept` holds is built once and merged from its serialized form after that.

    False when it was left out (its JSON text is then left out too)."""
    try:
        data = load()
        serialized = kept.message(operation_id, data)
        if serialized is not None:
            target.MergeFromString(serialized)
            return True
        if limits.too_deep(data):
            raise ValueError(f"nested deeper than {limits.current.max_json_depth} levels (setting max_json_depth)")
        set_value(target, data)
        kept.remember_message(operation_id, data, target)
        return True
    except (ValueError, TypeError, RecursionError, json_format.ParseError) as error:
        target.Clear()
        log.warning("operation %s: its stored %s is left out of the reply: %s", operation_id, field, error)
        return False


def event_into(message: pb.OperationEvent, event: Event) -> None:
    """Fill `message` (empty: the `event` field of a WatchResponse or WatchEventsResponse) with the event, in place
    (see operation_into)."""
    message.MergeFrom(
        pb.OperationEvent(
            operation_id=event.operation_id,
            seq=event.seq,
            type=cast(pb.EventType, pb.EventType.Value(f"EVENT_TYPE_{event.type}")),
            time=_timestamp(event.time),
            message=event.message,
            actor=event.actor,
        )
    )
    operation_into(message.operation, event.operation)


def event_to_pb(event: Event) -> pb.WatchResponse:
    response = pb.WatchResponse()
    event_into(response.event, event)
    return response


def feed_response(event: Event) -> pb.WatchEventsResponse:
    response = pb.WatchEventsResponse(cursor=event.cursor)
    event_into(response.event, event)
    return response


def heavy(operation: Operation) -> bool:
    """Whether converting the operation's input and result to a message is worth a thread: more than
    `offload_json_bytes` (8 KiB) of JSON between them.

    Measured on 2 shared cores: converting a stored value costs about 0.3 µs per byte of JSON (1 KiB 0.3 ms, 8 KiB
    2.7 ms, 1 MiB 330 ms), a hop to a thread and back 60 µs at the median, 100 µs at p90, about what 250 bytes cost.
    Above 8 KiB the hop adds under 4%; below it, the common small result, the hop would cost as much as the
    conversion it saves. (The conversion is Python code and still takes the GIL in its thread, but the loop gets it
    back every switch interval: see offload.py.)
    """
    return heavy_all([operation])


def heavy_all(operations: Sequence[Operation]) -> bool:
    """Whether the operations' inputs and results are more than `offload_json_bytes` of JSON in all (see heavy); it
    stops as soon as it knows, so judging a large page costs no more than walking that many bytes of it."""
    budget = limits.current.offload_json_bytes
    for operation in operations:
        budget -= len(operation.input_json or "")
        if budget < 0:
            return True
        if operation.result is not None:
            budget = limits.json_bytes_left(operation.result, budget)
            if budget < 0:
                return True
    return False


class HasOperation(Protocol):
    @property
    def operation(self) -> pb.Operation: ...


Reply = TypeVar("Reply", bound=HasOperation)


async def operation_message(operation: Operation) -> pb.Operation:
    """`operation_to_pb` (full), in a thread when the operation is `heavy`, so a large value never holds the loop."""
    return await off_loop_if(heavy(operation), lambda: operation_to_pb(operation))


async def reply(operation: Operation, reply_type: Callable[[], Reply]) -> Reply:
    """A `reply_type` message whose `operation` is the operation (full), built in place, in a thread when the
    operation is `heavy`."""

    def build() -> Reply:
        message = reply_type()
        operation_into(message.operation, operation)
        return message

    return await off_loop_if(heavy(operation), build)


async def converted(operation: Operation, build: Callable[[pb.Operation], Message]) -> Message:
    """`build(operation_to_pb(operation))`, both in one thread when the operation is `heavy` (the LRO service's
    replies pack, that is serialize, the message: 5-10 ms for a 1 MiB value)."""
    return await off_loop_if(heavy(operation), lambda: build(operation_to_pb(operation)))


async def event_message(event: Event) -> pb.WatchResponse:
    """`event_to_pb`, in a thread when the event's operation is `heavy` (see operation_message)."""
    return await off_loop_if(heavy(event.operation), lambda: event_to_pb(event))


async def feed_message(event: Event) -> pb.WatchEventsResponse:
    """`feed_response`, in a thread when the event's operation is `heavy` (see operation_message)."""
    return await off_loop_if(heavy(event.operation), lambda: feed_response(event))


def event_type_from_pb(value: int) -> EventType:
    return EventType(pb.EventType.Name(value).removeprefix("EVENT_TYPE_"))


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
