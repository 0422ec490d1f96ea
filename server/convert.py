"""Conversions between the store's snapshots and the pausable.v1 messages."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from pausable.jsonvalue import set_value
from pausable.server import encoded, limits, parsed
from pausable.server.domain import BulkAction, Event, Operation, StepRecord
from pausable.server.encoded import Encoded
from pausable.server.offload import off_loop, off_loop_if
from pausable.server.states import EventType, State
from pausable.v1 import operation_pb2 as pb

log = logging.getLogger("pausable.server")
Built = TypeVar("Built")


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


ON_TIMEOUT_TO_PB = {"resume": pb.PAUSE_TIMEOUT_ACTION_RESUME, "cancel": pb.PAUSE_TIMEOUT_ACTION_CANCEL}
BULK_KIND_TO_PB = {"pause": pb.BULK_ACTION_KIND_PAUSE, "resume": pb.BULK_ACTION_KIND_RESUME, "cancel": pb.BULK_ACTION_KIND_CANCEL}
BULK_STATE_TO_PB = {"RUNNING": pb.BULK_ACTION_STATE_RUNNING, "DONE": pb.BULK_ACTION_STATE_DONE}


def bulk_to_pb(action: BulkAction) -> pb.BulkAction:
    message = pb.BulkAction(
        id=action.id,
        kind=BULK_KIND_TO_PB[action.kind],
        state=BULK_STATE_TO_PB[action.state],
        matched=action.matched,
        done=action.done,
        skipped=action.skipped,
        failed=action.failed,
        skipped_reasons=[pb.BulkSkip(reason=reason, count=count) for reason, count in sorted(action.skipped_reasons.items())],
        failures=[pb.BulkFailure(**failure) for failure in action.failures],
        reason=action.reason,
        actor=action.actor,
    )
    _set_time(message.create_time, action.create_time)
    _set_time(message.update_time, action.update_time)
    _set_time(message.end_time, action.end_time)
    return message


def operation_to_pb(operation: Operation, full: bool = True) -> pb.Operation:
    """The operation as a message; without `full` (ListOperations' BASIC view), input and result are left out."""
    message = pb.Operation()
    operation_into(message, operation, full)
    return message


def operation_into(message: pb.Operation, operation: Operation, full: bool = True) -> None:
    """Fill `message` (empty, usually a field of the reply) with the operation: the values are built in place, because
    copying a message that holds a large value (building a reply around it, CopyFrom) is one C call that holds the
    GIL, and so the event loop, for 13-50 ms per MiB on 2 cores. Replies of a `heavy` operation are made from
    `operation_parts` in a thread instead."""

    def build_in_place(name: str, data: Any, kept: parsed.ParsedValues) -> bool:
        target = getattr(message, name)
        try:
            serialized = kept.message(operation.id, data)
            if serialized is not None:
                target.MergeFromString(serialized)
            else:
                set_value(target, data)
        except BaseException:
            target.Clear()
            raise
        return True

    _fields_into(message, operation)
    _values_into(message, operation, full, build_in_place)


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
        members = (
            encoded.field(_MEMBERS, encoded.field(1, key.encode()) + encoded.field(2, value_bytes(item)))
            for key, item in data.items()
        )
        return encoded.field(_STRUCT_VALUE, b"".join(members))
    if isinstance(data, list) and limits.json_bytes_over(data, PIECE_BYTES):
        return encoded.field(_LIST_VALUE, b"".join(encoded.field(_ITEMS, value_bytes(item)) for item in data))
    value = struct_pb2.Value()
    set_value(value, data)
    return value.SerializeToString()


@dataclass(frozen=True, slots=True)
class OperationParts:
    """An operation as a message without its input and result Values (`header`, JSON texts included), and those
    Values serialized (`values`, by field name: made once for a large value, see parsed.ParsedValues)."""

    header: pb.Operation
    values: dict[str, bytes]

    def serialized(self) -> bytes:
        return encoded.message_with(self.header, self.values.items())

    def size(self) -> int:
        """The length of `serialized()`, near enough: each value's field tag and length taken as 8 bytes."""
        return self.header.ByteSize() + sum(len(value) + 8 for value in self.values.values())


def operation_parts(operation: Operation, full: bool = True) -> OperationParts:
    """The operation in parts (see encoded.py): for a `heavy` operation, in a thread."""
    header = pb.Operation()
    values: dict[str, bytes] = {}

    def serialize(name: str, data: Any, kept: parsed.ParsedValues) -> bool:
        serialized = kept.message(operation.id, data)
        if serialized is None:
            serialized = value_bytes(data)
            kept.remember_message(operation.id, data, serialized)
        values[name] = serialized
        return True

    _fields_into(header, operation)
    _values_into(header, operation, full, serialize)
    return OperationParts(header, values)


def _fields_into(message: pb.Operation, operation: Operation) -> None:
    """Everything of the operation but its input and result."""
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
            parent_id=operation.parent_id,
            forked_from_step=operation.forked_from_step,
            pause_before_step=operation.pause_before_step,
        )
    )
    _set_time(message.create_time, operation.create_time)
    _set_time(message.update_time, operation.update_time)
    _set_time(message.end_time, operation.end_time)
    _set_time(message.lease_expire_time, operation.lease_expire_time)
    if operation.deadline_seconds is not None:
        message.deadline.FromNanoseconds(int(operation.deadline_seconds * 1e9))
        message.deadline_used.FromNanoseconds(int(operation.deadline_used(time.time()) * 1e9))
        _set_time(message.deadline_time, operation.deadline_time)
    if operation.pause_on_timeout:
        _set_time(message.pause_timeout_time, operation.pause_timeout_time)
        message.pause_on_timeout = ON_TIMEOUT_TO_PB[operation.pause_on_timeout]
    if operation.stage is not None:
        total, done, running = operation.stage
        message.stage.MergeFrom(pb.StageProgress(members_total=total, members_done=done, members_running=running))
    if operation.error:
        message.error.MergeFrom(pb.OperationError(**operation.error))
        if "step_number" not in operation.error:  # errors stored before user step numbering counted every plan entry
            message.error.step_number = message.error.step + 1 if message.error.step >= 0 else 0


def _values_into(
    message: pb.Operation, operation: Operation, full: bool, place: Callable[[str, Any, parsed.ParsedValues], bool]
) -> None:
    """With `full`, each stored value `place`d (as the `input` or `result` Value) and its JSON text set beside it.

    A value that cannot be a Value every client decodes (stored before the limits, nested deeper than
    max_json_depth) is left out with a warning, and its text too, so reads and streams never fail on it."""
    if full and operation.input_json is not None:
        text = operation.input_json
        if _placed(operation.id, "input", lambda: parsed.inputs.parse(operation.id, text), parsed.inputs, place):
            message.input_json = text
    if full and operation.result is not None:
        result = operation.result
        if _placed(operation.id, "result", lambda: result, parsed.results, place):
            message.result_json = parsed.results.compact_json(operation.id, result)


def _placed(
    operation_id: str,
    field: str,
    load: Callable[[], Any],
    kept: parsed.ParsedValues,
    place: Callable[[str, Any, parsed.ParsedValues], bool],
) -> bool:
    try:
        data = load()
        if kept.message(operation_id, data) is None and limits.too_deep(data):  # a kept message was checked when made
            raise ValueError(f"nested deeper than {limits.current.max_json_depth} levels (setting max_json_depth)")
        return place(field, data, kept)
    except (ValueError, TypeError, RecursionError, json_format.ParseError) as error:
        log.warning("operation %s: its stored %s is left out of the reply: %s", operation_id, field, error)
        return False


STEP_KINDS = {"result": pb.StepRecord.KIND_RESULT, "failed": pb.StepRecord.KIND_FAILED, "input": pb.StepRecord.KIND_INPUT}


def step_record_to_pb(record: StepRecord) -> pb.StepRecord:
    """An entry of the step history; its result Value is made from its JSON text when the text was read (a text that
    cannot be a Value every client decodes keeps only its JSON text)."""
    message = pb.StepRecord(
        kind=STEP_KINDS.get(record.kind, pb.StepRecord.KIND_UNSPECIFIED),
        step_number=record.step_number,
        name=record.name,
        attempt=record.attempt,
        result_bytes=record.result_bytes,
        plan_index=record.step,
    )
    _set_time(message.start_time, record.start_time)
    _set_time(message.end_time, record.end_time)
    if record.start_time is not None and record.end_time is not None:
        message.duration.FromNanoseconds(max(0, int((record.end_time - record.start_time) * 1e9)))
    if record.result_json is not None:
        message.result_json = record.result_json
        try:
            data = json.loads(record.result_json)
            if not limits.too_deep(data):
                set_value(message.result, data)
        except (ValueError, TypeError, RecursionError):
            message.ClearField("result")
    if record.previous_json is not None:
        message.previous_json = record.previous_json
    return message


def event_into(message: pb.OperationEvent, event: Event) -> None:
    """Fill `message` (empty: the `event` field of a WatchResponse or WatchEventsResponse) with the event, in place
    (see operation_into)."""
    _event_fields_into(message, event)
    operation_into(message.operation, event.operation)


def _event_fields_into(message: pb.OperationEvent, event: Event) -> None:
    message.MergeFrom(
        pb.OperationEvent(
            operation_id=event.operation_id,
            seq=event.seq,
            type=cast(pb.EventType, pb.EventType.Value(f"EVENT_TYPE_{event.type}")),
            time=_timestamp(event.time),
            message=event.message,
            actor=event.actor,
            reason=event.reason,
        )
    )


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
Response = TypeVar("Response", pb.WatchResponse, pb.WatchEventsResponse)


def encoded_reply(operation: Operation, reply_type: Callable[[], Reply]) -> Encoded[Reply]:
    """A `reply_type` message whose `operation` is the operation (full), serialized in parts (see encoded.py)."""
    parts = operation_parts(operation)
    message = reply_type()
    _fields_into(message.operation, operation)  # not a copy of the header: its JSON texts may be megabytes
    return Encoded(message, encoded.message_with(cast(Message, reply_type()), [("operation", parts.serialized())]))


def encoded_event(event: Event, response: Response) -> Encoded[Response]:
    """`response` (a WatchResponse or WatchEventsResponse without its event) holding the event, serialized in parts."""
    parts = operation_parts(event.operation)
    header = pb.OperationEvent()
    _event_fields_into(header, event)
    data = encoded.message_with(response, [("event", encoded.message_with(header, [("operation", parts.serialized())]))])
    response.event.MergeFrom(header)
    _fields_into(response.event.operation, event.operation)  # not a copy of the header: its JSON texts may be megabytes
    return Encoded(response, data)


async def reply(operation: Operation, reply_type: Callable[[], Reply]) -> Reply | Encoded[Reply]:
    """A `reply_type` message whose `operation` is the operation (full): built in place on the loop, or, for a
    `heavy` operation, serialized in a thread."""
    if heavy(operation):
        return await off_loop(lambda: encoded_reply(operation, reply_type))
    message = reply_type()
    operation_into(message.operation, operation)
    return message


async def converted(operation: Operation, build: Callable[[OperationParts], Built]) -> Built:
    """`build(operation_parts(operation))`, both in one thread when the operation is `heavy`."""
    return await off_loop_if(heavy(operation), lambda: build(operation_parts(operation)))


def feed_reply(event: Event) -> pb.WatchEventsResponse | Encoded[pb.WatchEventsResponse]:
    """The event as WatchEvents sends it: serialized in parts when its operation is `heavy` (then call it in a
    thread)."""
    if heavy(event.operation):
        return encoded_event(event, pb.WatchEventsResponse(cursor=event.cursor))
    return feed_response(event)


async def event_message(event: Event) -> pb.WatchResponse | Encoded[pb.WatchResponse]:
    """The event as Watch sends it: serialized in parts in a thread when its operation is `heavy`."""
    if heavy(event.operation):
        return await off_loop(lambda: encoded_event(event, pb.WatchResponse()))
    return event_to_pb(event)


async def feed_message(event: Event) -> pb.WatchEventsResponse | Encoded[pb.WatchEventsResponse]:
    """`feed_reply`, in a thread when the event's operation is `heavy`."""
    return await off_loop_if(heavy(event.operation), lambda: feed_reply(event))


def event_type_from_pb(value: int) -> EventType:
    return EventType(pb.EventType.Name(value).removeprefix("EVENT_TYPE_"))


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
