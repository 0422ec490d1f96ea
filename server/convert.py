"""Conversions between the store's snapshots and the pausable.v1 messages."""

from __future__ import annotations

import json
import math
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from pausable.server.states import EventType, State
from pausable.server.store import Event
from pausable.v1 import operation_pb2 as pb

MAX_EXACT_INT = 2**53


def to_value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


def from_value(value: struct_pb2.Value) -> Any:
    """A Value as plain Python, integral numbers as int (JSON cannot tell 3 from 3.0; Python code can)."""
    return _integral(json_format.MessageToDict(value))


def _integral(data: Any) -> Any:
    if isinstance(data, float) and math.isfinite(data) and data.is_integer() and abs(data) < MAX_EXACT_INT:
        return int(data)
    if isinstance(data, list):
        return [_integral(item) for item in data]
    if isinstance(data, dict):
        return {key: _integral(item) for key, item in data.items()}
    return data


def _timestamp(epoch: float | None) -> timestamp_pb2.Timestamp | None:
    if epoch is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(epoch * 1e9))
    return stamp


def state_to_pb(state: str) -> int:
    return pb.OperationState.Value(f"OPERATION_STATE_{state}")


def state_from_pb(value: int) -> State:
    return State(pb.OperationState.Name(value).removeprefix("OPERATION_STATE_"))


def operation_to_pb(snap: dict[str, Any]) -> pb.Operation:
    message = pb.Operation(
        id=snap["id"],
        workflow=snap["workflow"],
        state=state_to_pb(snap["state"]),
        current_step=snap["current_step"],
        total_steps=snap["total_steps"],
        current_step_name=snap["current_step_name"],
        progress=snap["progress"],
        progress_message=snap["progress_message"],
        requester=snap["requester"],
        labels=snap["labels"],
        create_time=_timestamp(snap["create_time"]),
        update_time=_timestamp(snap["update_time"]),
        end_time=_timestamp(snap["end_time"]),
        last_seq=snap["last_seq"],
    )
    if "input" in snap:
        message.input.CopyFrom(to_value(snap["input"]))
    if snap["result"] is not None:
        message.result.CopyFrom(to_value(snap["result"]))
    if snap["error"]:
        message.error.CopyFrom(pb.OperationError(**snap["error"]))
    return message


def event_to_pb(event: Event) -> pb.WatchResponse:
    return pb.WatchResponse(
        event=pb.OperationEvent(
            operation_id=event.operation_id,
            seq=event.seq,
            type=pb.EventType.Value(f"EVENT_TYPE_{event.type}"),
            time=_timestamp(event.time),
            message=event.message,
            operation=operation_to_pb(event.snapshot),
        )
    )


def event_type_from_pb(value: int) -> EventType:
    return EventType(pb.EventType.Name(value).removeprefix("EVENT_TYPE_"))


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
