"""Conversions between the store's snapshots and the pausable.v1 messages."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import timestamp_pb2

from pausable.jsonvalue import to_value
from pausable.server.states import EventType, State
from pausable.server.store import Event
from pausable.v1 import operation_pb2 as pb


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
