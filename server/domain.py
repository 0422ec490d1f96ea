"""The daemon's domain types: what the store returns and the engine, the hub and the servicers pass around.

Plain frozen dataclasses with no SQL and no protobuf: `store.py` makes them
from rows, `convert.py` turns them into pausable.v1 messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple, TypeVar

from pausable.server import jsontext, random_ids
from pausable.server.states import Decision, EventType, Numbering, State

DEFAULT_MAX_ATTEMPTS = 3
T = TypeVar("T")


class NotFound(Exception):
    """No operation with this id (NOT_FOUND)."""


class AlreadyExists(Exception):
    """A request_id already used for something else (ALREADY_EXISTS)."""


class UnknownWorkflow(Exception):
    """A workflow no worker registered (NOT_FOUND); the message lists the registered ones."""


class NotDispatched(Exception):
    """A report on a step whose token is not the one its current dispatch carries (PERMISSION_DENIED)."""


class PastTheEnd(Exception):
    """A Watch after a seq the operation has not reached (OUT_OF_RANGE); the message names its last seq."""


class ShuttingDown(Exception):
    """The daemon is stopping (UNAVAILABLE); the message says where to resume, e.g. "Watch with after_seq=7"."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """An entry of an operation's step history (models.StepResultRow): `kind` "result", "failed" or "input"; `step`
    the plan index, `step_number` the user's step; times in epoch seconds; the JSON texts None where not read."""

    kind: str
    step: int
    step_number: int
    name: str
    attempt: int
    start_time: float | None
    end_time: float | None
    result_bytes: int
    result_json: str | None = None
    previous_json: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """An operation as clients see it; `input_json` is None where the input was not read.

    `current_step` is the 0-based index in the plan, `total_steps` the plan's
    length; `step_number` of `step_count` is what users see ("step 3/5"),
    counting only the user's steps (states.Numbering).
    """

    id: str
    workflow: str
    state: State
    current_step: int
    total_steps: int
    current_step_name: str
    progress: float
    progress_message: str
    result: Any
    error: dict[str, Any] | None
    requester: str
    labels: dict[str, str]
    create_time: float | None
    update_time: float | None
    end_time: float | None
    last_seq: int
    attempt: int = 1
    lease_expire_time: float | None = None
    input_json: str | None = None
    step_number: int = 0
    step_count: int = 0
    parent_id: str = ""
    forked_from_step: int = 0
    pause_before_step: int = 0  # a pending breakpoint (Pause(before_step=N)): the user step it pauses before; 0 none
    deadline_seconds: float | None = None  # the running-time budget (timers.py)
    deadline_used_seconds: float = 0.0  # used before the current run; see deadline_used
    deadline_time: float | None = None  # when the budget runs out while running
    pause_timeout_time: float | None = None  # while PAUSED with a pause timeout: when it is due
    pause_on_timeout: str = ""  # "resume", "cancel" or ""
    stage: tuple[int, int, int] | None = None  # while a stage runs: its members (total, done, running)

    @classmethod
    def from_dict(cls, data: dict[str, Any], input_json: str | None = None) -> Operation:
        """From a snapshot (reads.snapshot_of, the JSON kept with each event), including one stored before a field existed."""
        return cls(
            id=data["id"],
            workflow=data["workflow"],
            state=State(data["state"]),
            current_step=data["current_step"],
            total_steps=data["total_steps"],
            current_step_name=data["current_step_name"],
            progress=data["progress"],
            progress_message=data["progress_message"],
            result=data["result"],
            error=data["error"],
            requester=data["requester"],
            labels=data["labels"],
            create_time=data["create_time"],
            update_time=data["update_time"],
            end_time=data["end_time"],
            last_seq=data["last_seq"],
            attempt=data.get("attempt", 1),
            lease_expire_time=data.get("lease_expire_time"),
            # Snapshots from before user step numbering counted every plan entry.
            step_number=data.get("step_number", min(data["current_step"] + 1, data["total_steps"])),
            step_count=data.get("step_count", data["total_steps"]),
            input_json=input_json,
            parent_id=data.get("parent_id") or "",
            forked_from_step=data.get("forked_from_step", 0),
            pause_before_step=data.get("pause_before_step", 0),
            deadline_seconds=data.get("deadline_seconds"),
            deadline_used_seconds=data.get("deadline_used_seconds") or 0.0,
            deadline_time=data.get("deadline_time"),
            pause_timeout_time=data.get("pause_timeout_time"),
            pause_on_timeout=data.get("pause_on_timeout") or "",
            stage=(data["stage"][0], data["stage"][1], data["stage"][2]) if data.get("stage") else None,
        )

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    def deadline_used(self, now: float) -> float:
        """Running time used of the budget at `now` (epoch seconds): it grows only while the operation runs."""
        if self.deadline_seconds is None or self.deadline_time is None:
            return self.deadline_used_seconds
        return max(self.deadline_seconds - (self.deadline_time - now), 0.0)


@dataclass(frozen=True)
class BulkAction:
    """A BulkPause/BulkResume/BulkCancel and its progress (see Store.bulk_batch)."""

    id: str
    kind: str  # states.Command
    state: str  # RUNNING, DONE
    matched: int
    done: int
    skipped: int
    failed: int
    skipped_reasons: dict[str, int]
    failures: list[dict[str, str]]
    reason: str
    actor: str
    requester: str
    create_time: float | None
    update_time: float | None
    end_time: float | None


@dataclass(frozen=True)
class Event:
    """A committed event; `snapshot` is its operation as of the event (reads.snapshot_of).

    `operation` is built from the snapshot when first asked for: most events
    are committed with no watcher to convert them, and building an Operation
    for each cost the single SQLite writer a visible share of a start.
    """

    operation_id: str
    seq: int
    type: EventType
    message: str
    time: float
    snapshot: dict[str, Any]
    cursor: str = ""
    actor: str = ""  # who asked, for command events (start, pause, resume, cancel)
    reason: str = ""  # the note of why given with a pause, resume or cancel, on the events it appended

    @cached_property
    def operation(self) -> Operation:
        return Operation.from_dict(self.snapshot)

    @property
    def state(self) -> State:
        return State(self.snapshot["state"])

    @property
    def terminal(self) -> bool:
        return self.state.terminal


@dataclass(frozen=True)
class Workflow:
    """A registered workflow; `plan` holds one Celery signature dict (task, args, kwargs, options) per step."""

    name: str
    plan: list[dict[str, Any]]
    description: str = ""
    input_schema: dict[str, Any] | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    registered_at: datetime | None = None

    @property
    def steps(self) -> list[str]:
        return [entry["task"] for entry in self.plan]

    @cached_property
    def numbering(self) -> Numbering:
        """Which plan entries are the user's steps (entries marked `inserted` are not)."""
        return Numbering.of(self.plan)

    @cached_property
    def stored_plan(self) -> list[dict[str, Any]]:
        """The plan as every operation's row stores it, encoded once (jsontext.Listed)."""
        return jsontext.Listed(self.plan)

    @cached_property
    def stored_steps(self) -> list[str]:
        """The step names as every operation's row stores them, encoded once."""
        return jsontext.Listed(self.steps)


UNPARSED: Any = type("Unparsed", (), {"__repr__": lambda self: "UNPARSED"})()


@dataclass(frozen=True, slots=True)
class StepReport:
    """A worker's report that `step` of an operation ended with `result_json` (see states.checkpoint)."""

    operation_id: str
    step: int
    result_json: str
    attempt_id: str = ""
    continued: bool = False
    attempt: int = 0
    step_token: str = ""
    next_not_started: bool = False  # sent before the next step's body ran (see states.checkpoint)
    next_dropped: bool = False  # ...by a worker that dropped that step: if the operation goes on, it is sent again
    in_step: bool = False  # sent from inside the running step (pause_here): it stops where it is, see states.checkpoint
    details_json: str | None = None  # with in_step: what the step saved to continue from
    member: int | None = None  # the 0-based member of the stage at `step` that this task ran (stages.py)
    # result_json parsed, when the daemon already did (checking its limits): the store keeps it for the event
    # snapshots instead of parsing the text again (parsed.ParsedValues). UNPARSED when not.
    result: Any = field(default=UNPARSED, compare=False)
    result_finite: bool = field(default=False, compare=False)  # `result` holds no NaN or infinity (jsontext.decode)


class HeldStep(NamedTuple):
    """A step (or, with `member`, a stage's member) a live worker has reserved or runs: its lease runs on."""

    operation_id: str
    step: int
    attempt: int
    step_token: str
    member: int | None = None


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """The answer to a report; `refused`: its step token was not the current dispatch's, nothing was recorded."""

    decision: Decision
    state: State
    attempt: int = 1
    refused: bool = False
    resend: Dispatch | None = None  # the dropped next step, sent again (a next_dropped report that goes on)
    outbox: int | None = None  # resend's outbox entry
    ask: bool = False  # a breakpoint is near: the stop flag asks workers to check in at each boundary (flags.follow)
    unannounced: bool = False  # stage members were recorded that no event names yet (Store.announce_members)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The rest of an operation's plan to send to the broker: steps `start`.. of `plan`, the first fed `argument`."""

    operation_id: str
    plan: Sequence[dict[str, Any]]
    start: int
    argument: Any
    attempt: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    step_token: str = ""  # the dispatch's secret (operations.step_secret), sent in every step's headers
    members: tuple[int, ...] | None = None  # `start` is a stage: the members to send (stages.py), each its own chain


@dataclass(frozen=True)
class OperationFilter:
    """Which operations a list or a global event stream covers; empty fields match everything."""

    states: Sequence[State] = ()
    workflow: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    requester: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    stuck: bool = False


class Page(list[T]):
    """One page of a read: its items, in order, and whether more may follow (it stopped at its row limit or its byte
    budget), so a reader goes on reading without an extra query that finds nothing."""

    def __init__(self, items: Iterable[T] = (), more: bool = False) -> None:
        super().__init__(items)
        self.more = more


def encode_cursor(tx: int, event_id: int) -> str:
    return f"{tx}.{event_id}"


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Raises ValueError for anything encode_cursor did not make."""
    if not cursor:
        return (-1, 0)
    tx, _, event_id = cursor.partition(".")
    return int(tx), int(event_id)


def new_operation_id() -> str:
    """32 hex digits that sort by creation time (milliseconds, then 80 random bits)."""
    return f"{time.time_ns() // 1_000_000:012x}{random_ids.token_hex(10)}"
