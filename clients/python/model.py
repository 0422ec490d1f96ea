"""What an SDK user reads: states and event types with plain names, a typed view of an operation, typed events,
and the one JSON rendering of them that the CLI prints too.

Values come from the exact JSON text the daemon sends (`input_json`, `result_json`), so an integer stays an
integer however large; the `google.protobuf.Value` beside it is the fallback for older daemons.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2

from pausable.jsonvalue import from_value
from pausable.v1 import operation_pb2 as pb


class _Named(enum.IntEnum):
    """An enum whose members are the proto's numbers with plain names: `State.RUNNING == pb.OPERATION_STATE_RUNNING`,
    `State.RUNNING == "RUNNING"`, and `str(State.RUNNING) == "RUNNING"`."""

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.name == other
        return int(self) == other

    def __hash__(self) -> int:
        return int(self)


class State(_Named):
    UNSPECIFIED = pb.OPERATION_STATE_UNSPECIFIED
    PENDING = pb.OPERATION_STATE_PENDING
    RUNNING = pb.OPERATION_STATE_RUNNING
    PAUSE_REQUESTED = pb.OPERATION_STATE_PAUSE_REQUESTED
    PAUSED = pb.OPERATION_STATE_PAUSED
    CANCEL_REQUESTED = pb.OPERATION_STATE_CANCEL_REQUESTED
    SUCCEEDED = pb.OPERATION_STATE_SUCCEEDED
    FAILED = pb.OPERATION_STATE_FAILED
    CANCELLED = pb.OPERATION_STATE_CANCELLED

    @property
    def terminal(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


class EventType(_Named):
    UNSPECIFIED = pb.EVENT_TYPE_UNSPECIFIED
    CREATED = pb.EVENT_TYPE_CREATED
    STARTED = pb.EVENT_TYPE_STARTED
    STEP_COMPLETED = pb.EVENT_TYPE_STEP_COMPLETED
    PROGRESS = pb.EVENT_TYPE_PROGRESS
    PAUSE_REQUESTED = pb.EVENT_TYPE_PAUSE_REQUESTED
    PAUSED = pb.EVENT_TYPE_PAUSED
    RESUMED = pb.EVENT_TYPE_RESUMED
    CANCEL_REQUESTED = pb.EVENT_TYPE_CANCEL_REQUESTED
    CANCELLED = pb.EVENT_TYPE_CANCELLED
    SUCCEEDED = pb.EVENT_TYPE_SUCCEEDED
    FAILED = pb.EVENT_TYPE_FAILED
    STEP_RETRIED = pb.EVENT_TYPE_STEP_RETRIED
    RETRIED = pb.EVENT_TYPE_RETRIED
    STAGE_STARTED = pb.EVENT_TYPE_STAGE_STARTED
    MEMBER_COMPLETED = pb.EVENT_TYPE_MEMBER_COMPLETED
    STAGE_COMPLETED = pb.EVENT_TYPE_STAGE_COMPLETED


def state_of(value: int) -> State:
    """The State of a proto number (UNSPECIFIED for one this SDK does not know yet)."""
    try:
        return State(value)
    except ValueError:
        return State.UNSPECIFIED


def event_type_of(value: int) -> EventType:
    try:
        return EventType(value)
    except ValueError:
        return EventType.UNSPECIFIED


def state_name(state: int) -> str:
    return state_of(state).name


def event_name(event_type: int) -> str:
    return event_type_of(event_type).name


def step_number(operation: pb.Operation) -> int:
    """The 1-based step users see ("step 3/5"); from `step_number`, or derived as the daemon does for older ones."""
    if operation.step_number:
        return operation.step_number
    return min(operation.current_step + 1, operation.total_steps)


def input_of(operation: pb.Operation) -> Any:
    if operation.input_json:
        return json.loads(operation.input_json)
    return from_value(operation.input) if operation.HasField("input") else None


def result_of(operation: pb.Operation) -> Any:
    if operation.result_json:
        return json.loads(operation.result_json)
    return from_value(operation.result) if operation.HasField("result") else None


def time_of(stamp: timestamp_pb2.Timestamp, present: bool = True) -> datetime | None:
    """An aware UTC datetime, None for an unset Timestamp."""
    if not present:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class StepError:
    """Why an operation FAILED: `step` is the 1-based number users see (0: no step was involved)."""

    code: str
    message: str
    step: int
    step_name: str
    traceback: str = ""  # the worker's traceback of the failed step, its end (empty when the daemon decided the error)
    member_index: int | None = None  # when a member of a stage failed: its 0-based index in the stage


@dataclass(frozen=True)
class StageProgress:
    """The members of the running stage (a group, or a map over a list): "stage 2/3 · 37/200 done"."""

    members_total: int
    members_done: int
    members_running: int

    @classmethod
    def from_proto(cls, stage: pb.StageProgress) -> StageProgress:
        return cls(stage.members_total, stage.members_done, stage.members_running)

    @property
    def fraction(self) -> float:
        """How much of the stage is done, 0.0 to 1.0."""
        return min(self.members_done / self.members_total, 1.0) if self.members_total > 0 else 0.0


class OperationData:
    """An operation as last seen, read without a call. `proto` is the raw message.

    Steps: `step` of `total_steps` is what users see ("step 3/5", 1-based), counting the workflow's own steps (not
    the tasks `tappable` inserts); `current_step` is the 0-based index in the plan, inserted tasks included (see the
    proto's Operation.current_step).
    """

    def __init__(self, proto: pb.Operation) -> None:
        self.proto = proto

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.workflow} {self.state.name} step {self.step}/{self.total_steps}>"

    @property
    def id(self) -> str:
        return self.proto.id

    @property
    def workflow(self) -> str:
        return self.proto.workflow

    @property
    def state(self) -> State:
        return state_of(self.proto.state)

    @property
    def done(self) -> bool:
        return self.state.terminal

    @property
    def step(self) -> int:
        return step_number(self.proto)

    @property
    def total_steps(self) -> int:
        return self.proto.total_steps

    @property
    def current_step(self) -> int:
        return self.proto.current_step

    @property
    def step_name(self) -> str:
        return self.proto.current_step_name

    @property
    def progress(self) -> float:
        return self.proto.progress

    @property
    def stage(self) -> StageProgress | None:
        """While the current step is a stage of parallel members: how many it has, are done and are running; None
        while a plain step runs."""
        return StageProgress.from_proto(self.proto.stage) if self.proto.HasField("stage") else None

    @property
    def progress_message(self) -> str:
        return self.proto.progress_message

    @property
    def input(self) -> Any:
        return input_of(self.proto)

    @property
    def result(self) -> Any:
        return result_of(self.proto)

    @property
    def error(self) -> StepError | None:
        if not self.proto.HasField("error"):
            return None
        error = self.proto.error
        number = error.step_number or (error.step + 1 if error.step >= 0 else 0)
        member = error.member_index if error.HasField("member_index") else None
        return StepError(error.code, error.message, number, error.step_name, error.traceback, member)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.proto.labels)

    @property
    def requester(self) -> str:
        return self.proto.requester

    @property
    def last_seq(self) -> int:
        return self.proto.last_seq

    @property
    def parent_id(self) -> str:
        """The operation this one was forked from (Fork); empty for an operation that was started."""
        return self.proto.parent_id

    @property
    def forked_from_step(self) -> int:
        """The 1-based step a fork started at; 0 for an operation that was started."""
        return self.proto.forked_from_step

    @property
    def attempt(self) -> int:
        return self.proto.attempt

    @property
    def pause_before_step(self) -> int:
        """A pending breakpoint (pause(before_step=N)): the step N it pauses before; 0 when none."""
        return self.proto.pause_before_step

    @property
    def create_time(self) -> datetime | None:
        return time_of(self.proto.create_time, self.proto.HasField("create_time"))

    @property
    def update_time(self) -> datetime | None:
        return time_of(self.proto.update_time, self.proto.HasField("update_time"))

    @property
    def end_time(self) -> datetime | None:
        return time_of(self.proto.end_time, self.proto.HasField("end_time"))

    @property
    def deadline(self) -> timedelta | None:
        """The running-time budget given at start; None without one."""
        return self.proto.deadline.ToTimedelta() if self.proto.HasField("deadline") else None

    @property
    def deadline_used(self) -> timedelta | None:
        """Running time used of the budget (time PAUSED not counted), as of this view; None without a budget."""
        return self.proto.deadline_used.ToTimedelta() if self.proto.HasField("deadline") else None

    @property
    def deadline_time(self) -> datetime | None:
        """When the budget runs out if the operation keeps running; None while PAUSED, finished or without one."""
        return time_of(self.proto.deadline_time, self.proto.HasField("deadline_time"))

    @property
    def pause_timeout_time(self) -> datetime | None:
        """While PAUSED with a pause timeout: when the daemon resumes or cancels it (`pause_on_timeout`)."""
        return time_of(self.proto.pause_timeout_time, self.proto.HasField("pause_timeout_time"))

    @property
    def pause_on_timeout(self) -> str:
        """ "resume", "cancel", or "" without a pause timeout."""
        return ON_TIMEOUT_NAMES.get(self.proto.pause_on_timeout, "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the CLI prints with `-o json`."""
        return operation_dict(self.proto)


@dataclass(frozen=True)
class Event:
    """One event of an operation's history, as `watch()` yields it; `raw` is the protobuf message."""

    operation_id: str
    seq: int
    type: EventType
    time: datetime
    message: str
    actor: str
    reason: str
    operation: OperationData
    raw: pb.OperationEvent

    @property
    def state(self) -> State:
        """The operation's state right after this event."""
        return self.operation.state

    @classmethod
    def from_proto(cls, event: pb.OperationEvent) -> Event:
        return cls(
            operation_id=event.operation_id,
            seq=event.seq,
            type=event_type_of(event.type),
            time=event.time.ToDatetime(tzinfo=UTC),
            message=event.message,
            actor=event.actor,
            reason=event.reason,
            operation=OperationData(event.operation),
            raw=event,
        )

    def to_dict(self) -> dict[str, Any]:
        return event_dict(self.raw)


# -- the JSON rendering ------------------------------------------------------------------------------------------


def operation_dict(op: pb.Operation) -> dict[str, Any]:
    """An operation as JSON data: plain state names, ints as ints, input and result from their exact JSON text,
    the 1-based `step` of `total_steps`, times in ISO 8601 (UTC, Z)."""
    view = OperationData(op)
    data: dict[str, Any] = {
        "id": op.id,
        "workflow": op.workflow,
        "state": view.state.name,
        "step": view.step,
        "total_steps": op.total_steps,
        "step_name": op.current_step_name,
        "progress": op.progress,
        "progress_message": op.progress_message,
    }
    stage = view.stage
    if stage is not None:
        data["stage"] = asdict(stage)
    if op.input_json or op.HasField("input"):
        data["input"] = view.input
    if op.result_json or op.HasField("result"):
        data["result"] = view.result
    error = view.error
    if error is not None:
        data["error"] = {
            "code": error.code,
            "message": error.message,
            "step": error.step,
            "step_name": error.step_name,
            "traceback": error.traceback,
        }
        if error.member_index is not None:
            data["error"]["member_index"] = error.member_index
    data |= {
        "requester": op.requester,
        "labels": dict(sorted(op.labels.items())),
        "attempt": op.attempt,
        **({"pause_before_step": op.pause_before_step} if op.pause_before_step else {}),
        "last_seq": op.last_seq,
        "create_time": _iso(view.create_time),
        "update_time": _iso(view.update_time),
        "end_time": _iso(view.end_time),
        "lease_expire_time": _iso(time_of(op.lease_expire_time, op.HasField("lease_expire_time"))),
    }
    if op.parent_id:
        data |= {"parent_id": op.parent_id, "forked_from_step": op.forked_from_step}
    if op.HasField("deadline"):
        data |= {
            "deadline_seconds": op.deadline.ToTimedelta().total_seconds(),
            "deadline_used_seconds": round(op.deadline_used.ToTimedelta().total_seconds(), 3),
            "deadline_time": _iso(view.deadline_time),
        }
    if view.pause_on_timeout:
        data |= {"pause_timeout_time": _iso(view.pause_timeout_time), "pause_on_timeout": view.pause_on_timeout}
    return data


STEP_KINDS = {pb.StepRecord.KIND_RESULT: "result", pb.StepRecord.KIND_FAILED: "failed", pb.StepRecord.KIND_INPUT: "input"}
NOT_READ: Any = type("NotRead", (), {"__repr__": lambda self: "NOT_READ", "__bool__": lambda self: False})()


@dataclass(frozen=True)
class StepRecord:
    """An entry of an operation's step history (GetOperation with a step view): `kind` "result" (a step finished),
    "failed" (it failed) or "input" (Resume replaced what it receives: `result` the new value, `previous` the old);
    `step` the 1-based user step; `result` and `previous` are NOT_READ unless asked for (`results=True`) and sent.
    """

    kind: str
    step: int
    name: str
    attempt: int
    start_time: datetime | None
    end_time: datetime | None
    duration: float | None  # seconds; None when the start is not known
    result_bytes: int
    plan_index: int
    result: Any = NOT_READ
    previous: Any = NOT_READ
    raw: pb.StepRecord | None = None

    @classmethod
    def from_proto(cls, record: pb.StepRecord) -> StepRecord:
        return cls(
            kind=STEP_KINDS.get(record.kind, "unspecified"),
            step=record.step_number,
            name=record.name,
            attempt=record.attempt,
            start_time=time_of(record.start_time, record.HasField("start_time")),
            end_time=time_of(record.end_time, record.HasField("end_time")),
            duration=record.duration.ToTimedelta().total_seconds() if record.HasField("duration") else None,
            result_bytes=record.result_bytes,
            plan_index=record.plan_index,
            result=json.loads(record.result_json) if record.result_json else NOT_READ,
            previous=json.loads(record.previous_json) if record.previous_json else NOT_READ,
            raw=record,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "step": self.step,
            "name": self.name,
            "attempt": self.attempt,
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
            "duration_seconds": self.duration,
            "result_bytes": self.result_bytes,
        }
        if self.result is not NOT_READ:
            data["result"] = self.result
        if self.previous is not NOT_READ:
            data["previous"] = self.previous
        return data


ON_TIMEOUT_NAMES = {pb.PAUSE_TIMEOUT_ACTION_RESUME: "resume", pb.PAUSE_TIMEOUT_ACTION_CANCEL: "cancel"}
BULK_KIND_NAMES = {pb.BULK_ACTION_KIND_PAUSE: "pause", pb.BULK_ACTION_KIND_RESUME: "resume", pb.BULK_ACTION_KIND_CANCEL: "cancel"}


@dataclass(frozen=True)
class BulkAction:
    """A BulkPause/BulkResume/BulkCancel and its progress; `raw` is the protobuf message."""

    id: str
    kind: str  # "pause", "resume", "cancel"
    done_processing: bool  # every matched operation was processed (state DONE)
    matched: int
    done: int
    skipped: int
    failed: int
    skipped_reasons: dict[str, int]
    failures: list[tuple[str, str]]  # (operation id, message), the first 20
    reason: str
    actor: str
    raw: pb.BulkAction

    @classmethod
    def from_proto(cls, action: pb.BulkAction) -> BulkAction:
        return cls(
            id=action.id,
            kind=BULK_KIND_NAMES.get(action.kind, ""),
            done_processing=action.state == pb.BULK_ACTION_STATE_DONE,
            matched=action.matched,
            done=action.done,
            skipped=action.skipped,
            failed=action.failed,
            skipped_reasons={skip.reason: skip.count for skip in action.skipped_reasons},
            failures=[(failure.operation_id, failure.message) for failure in action.failures],
            reason=action.reason,
            actor=action.actor,
            raw=action,
        )

    def to_dict(self) -> dict[str, Any]:
        return bulk_action_dict(self.raw)


def bulk_action_dict(action: pb.BulkAction) -> dict[str, Any]:
    return {
        "id": action.id,
        "kind": BULK_KIND_NAMES.get(action.kind, ""),
        "state": "DONE" if action.state == pb.BULK_ACTION_STATE_DONE else "RUNNING",
        "matched": action.matched,
        "done": action.done,
        "skipped": action.skipped,
        "failed": action.failed,
        "skipped_reasons": {skip.reason: skip.count for skip in action.skipped_reasons},
        "failures": [{"operation_id": f.operation_id, "message": f.message} for f in action.failures],
        "reason": action.reason,
        "actor": action.actor,
        "create_time": _iso(time_of(action.create_time, action.HasField("create_time"))),
        "end_time": _iso(time_of(action.end_time, action.HasField("end_time"))),
    }


def event_dict(event: pb.OperationEvent) -> dict[str, Any]:
    return {
        "operation_id": event.operation_id,
        "seq": event.seq,
        "type": event_name(event.type),
        "time": _iso(event.time.ToDatetime(tzinfo=UTC)),
        "message": event.message,
        "actor": event.actor,
        "reason": event.reason,
        "operation": operation_dict(event.operation),
    }


def workflow_dict(flow: pb.Workflow) -> dict[str, Any]:
    return {
        "name": flow.name,
        "description": flow.description,
        "steps": list(flow.steps),
        "input_schema": from_value(flow.input_schema) if flow.HasField("input_schema") else None,
        "max_attempts": flow.max_attempts,
        "register_time": _iso(time_of(flow.register_time, flow.HasField("register_time"))),
        "plan": json.loads(flow.plan_json) if flow.plan_json else [],
    }
