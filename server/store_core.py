"""What every part of the store shares: the working row, the prepared statements, and `StoreCore`.

`StoreCore` holds the store's state (the write runner: writer.SqliteWriter or
postgres.PostgresWriter) and the helpers every write is made of: `_locked`
(the operation's row, locked, written back), `_apply` and `_append` (a
transition and its events, with gap-free `seq`), `_record_step` (the step
history), `_dispatch_of` and `_enqueue` (the rest of the plan, to the outbox).
The writes themselves are in the parts that `Store` (store.py) is composed of:
store_commands.py, store_reports.py, store_durability.py, store_bulk.py and
store_stages.py; what the core calls in them is declared here, abstract.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import String, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from pausable.server import random_ids, stages, states, timers
from pausable.server.domain import CheckpointResult, Dispatch, Event, NotFound, Operation, StepReport
from pausable.server.models import (
    Base,
    BulkActionRow,
    EventRow,
    LabelRow,
    OperationRow,
    OutboxRow,
    RequestRow,
    StageMemberRow,
    StepResultRow,
)
from pausable.server.parsed import inputs as parsed_inputs
from pausable.server.parsed import results as parsed_results
from pausable.server.postgres import PostgresWriter
from pausable.server.reads import Reads, snapshot_of
from pausable.server.states import ACTIVE, EventType, LeaseVerdict, State
from pausable.server.writer import SqliteWriter

Result = TypeVar("Result")
OutboxId = int

NUMBERING_CACHE = 10_000
OPERATIONS = OperationRow.__table__
EVENTS = EventRow.__table__
OUTBOX = OutboxRow.__table__
REQUESTS = RequestRow.__table__
BULK = BulkActionRow.__table__
MEMBERS = StageMemberRow.__table__
LOCKED_COLUMNS = [column for column in OPERATIONS.c if column.key not in ("step_names", "plan", "input_json")]
# Built once with bound parameters: hot writes reuse the compiled statements.
SELECT_LOCKED = select(*LOCKED_COLUMNS).where(OPERATIONS.c.id == bindparam("locked_id")).with_for_update()
SELECT_LOCKED_WITH_INPUT = (
    select(*LOCKED_COLUMNS, OPERATIONS.c.input_json, OPERATIONS.c.plan)
    .where(OPERATIONS.c.id == bindparam("locked_id"))
    .with_for_update()
)
SELECT_LOCKED_MANY = (
    select(*LOCKED_COLUMNS)
    .where(OPERATIONS.c.id.in_(bindparam("locked_ids", expanding=True)))
    .order_by(OPERATIONS.c.id)
    .with_for_update()
)
UPDATE_OPERATION = OPERATIONS.update().where(OPERATIONS.c.id == bindparam("updated_id"))
INSERT_EVENT = EVENTS.insert()
INSERT_OPERATION = OPERATIONS.insert()
INSERT_OUTBOX = OUTBOX.insert()
DELETE_OUTBOX = OUTBOX.delete().where(OUTBOX.c.id == bindparam("outbox_id"))
# SQLite: the entries of a JSON array of ids in one statement (sqlite3 runs an executemany row by row)
DELETE_OUTBOX_LISTED = OUTBOX.delete().where(
    OUTBOX.c.id.in_(select(func.json_each(bindparam("outbox_ids", type_=String)).table_valued("value").c.value))
)
INSERT_LABEL = LabelRow.__table__.insert()
INSERT_STEP_RESULT = StepResultRow.__table__.insert()

log = logging.getLogger("pausable.server")


class WorkingRow:
    """An operation's row while a write changes it: its columns as attributes (see Store._locked)."""

    id: str
    workflow: str
    state: str
    current_step: int
    total_steps: int
    current_step_name: str
    step_number: int
    step_count: int
    progress: float
    progress_message: str
    result_json: str | None
    error: dict[str, Any] | None
    last_seq: int
    attempt: int
    max_attempts: int
    lease_expires_at: datetime | None
    updated_at: datetime
    ended_at: datetime | None
    checkpoint_attempt: str
    checkpoint_step: int
    checkpoint_decision: str
    step_secret: str | None
    step_started_at: datetime | None
    details_json: str | None
    details_step: int
    pause_before_step: int
    requester: str
    deadline_seconds: float | None
    deadline_used_seconds: float
    deadline_at: datetime | None
    pause_timeout_seconds: float | None
    pause_on_timeout: str
    pause_due_at: datetime | None
    members_total: int
    members_done: int
    members_running: int
    members_next: int
    members_announced: int
    members_announced_at: datetime | None

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def values(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Change:
    """The outcome of a command: the operation afterwards, what was queued for dispatch, and whether it repeated an earlier request."""

    operation: Operation
    dispatch: Dispatch | None = None
    replayed: bool = False
    outbox: OutboxId | None = None
    ask: bool = False  # a breakpoint is near: the stop flag asks the workers to check in (see states.checkpoint)


@dataclass(frozen=True)
class LeaseOutcome:
    """What the lease sweep did to one operation."""

    operation: Operation
    verdict: LeaseVerdict
    dispatch: Dispatch | None = None
    outbox: OutboxId | None = None


def safe_publisher(publish: Callable[[list[Event]], None]) -> Callable[[list[Event]], None]:
    """`publish` that never raises into the commit path: the change is committed and answered whatever the fan-out does."""

    def published(events: list[Event]) -> None:
        try:
            publish(events)
        except Exception:
            log.exception("publishing %d committed events failed; watchers catch up from the store", len(events))

    return published


class StoreCore(Reads, ABC):
    """The store's state and the helpers its writes share; `write` runs a write (see store.py for the parts)."""

    def __init__(self, engine: AsyncEngine, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> None:
        super().__init__(engine)
        self.on_commit = safe_publisher(on_commit or (lambda events: None))
        self.replica = replica or secrets.token_hex(4)
        self.lease = timedelta(seconds=60)
        # Reports without a step token are refused (settings.require_step_tokens); off: taken as the current dispatch's.
        self.require_step_tokens = True
        self._numberings: dict[str, states.Numbering] = {}
        self.sqlite: SqliteWriter | None = None
        self.postgres_writer = PostgresWriter(self.sessions, self.replica, self.on_commit)  # unused on SQLite
        if not self.postgres:
            self.sqlite = SqliteWriter(engine.url.render_as_string(hide_password=False), self.on_commit)

    async def write(
        self, fn: Callable[[Session, list[Event]], Result], deferrable: bool = False, locks: Sequence[str] = ()
    ) -> Result:
        """Run `fn(session, events)` in a write transaction; its events are published once committed.

        `deferrable` and `locks` (Postgres): see PostgresWriter.submit."""
        if self.sqlite is not None:
            return await self.sqlite.submit(fn)
        return await self.postgres_writer.submit(fn, deferrable, locks)

    # -- helpers -------------------------------------------------------------

    @contextmanager
    def _locked(self, session: Session, operation_id: str, with_input: bool = False) -> Iterator[WorkingRow]:
        """The operation's row, locked; the columns changed in the block are written back. `with_input`: also its
        input and plan, what a command's reply and a dispatch need.

        Plain Core statements: the ORM's unit of work cost more than the
        rest of a checkpoint together. On SQLite the row of an active
        operation comes from the writer's row cache when this daemon wrote it last.
        """
        rows = self.sqlite.rows if self.sqlite is not None else None
        deferred = self.postgres_writer.deferred if self.sqlite is None else None
        before = None if with_input or rows is None else rows.get(operation_id)
        if deferred is not None and (before := deferred.rows.get(operation_id)) is not None and with_input:
            # locked earlier in this batch, as that write left it; input_json never changes
            before = {
                **before,
                "input_json": session.scalar(select(OPERATIONS.c.input_json).where(OPERATIONS.c.id == operation_id)),
            }
        if before is None:
            query = SELECT_LOCKED_WITH_INPUT if with_input else SELECT_LOCKED
            found = session.connection().execute(query, {"locked_id": operation_id}).one_or_none()
            if found is None:
                raise NotFound(operation_id)
            before = dict(found._mapping)
        row = WorkingRow(before)
        yield row
        after = row.values()
        changed = {key: value for key, value in after.items() if before[key] != value}
        if changed and deferred is not None:
            deferred.update(operation_id, changed)
        elif changed:
            self._execute(session, UPDATE_OPERATION, {"updated_id": operation_id, **changed})
        if deferred is not None:
            deferred.rows[operation_id] = {key: value for key, value in after.items() if key not in ("input_json", "plan")}
        if rows is not None:
            after.pop("input_json", None)
            after.pop("plan", None)
            rows.remember(operation_id, after, not State(after["state"]).terminal)

    def _record_step(
        self,
        session: Session,
        row: WorkingRow,
        kind: str,
        numbering: states.Numbering,
        result_json: str | None,
        now: datetime,
        started: datetime | None,
        step: int,
        previous_json: str | None = None,
    ) -> None:
        """Add an entry to the step history (models.StepResultRow): `step` is the plan index whose result the value is
        (for an "input", the step whose result it stands in for); the user's step is the one that produced it, or,
        for an "input", the one that receives it."""
        if kind == "input":
            number, name = numbering.number(step + 1), numbering.name(step + 1)
        elif kind == "result":  # an inserted entry (a pause point, the closing task) passes on its user step's result
            number, name = numbering.done(step), numbering.produced_by(step)
        else:
            number, name = numbering.number(step), numbering.name(step)
        values = {
            "operation_id": row.id, "kind": kind, "step": step, "step_number": number, "name": name,
            "attempt": row.attempt, "started_at": started, "ended_at": now, "result_json": result_json,
            "result_bytes": len(result_json.encode()) if result_json is not None else 0, "previous_json": previous_json,
        }  # fmt: skip
        if (deferred := self.postgres_writer.deferred) is not None:
            deferred.inserts.append((INSERT_STEP_RESULT, values))
        else:
            self._execute(session, INSERT_STEP_RESULT, values)

    def _operation(self, row: WorkingRow) -> Operation:
        return Operation.from_dict(snapshot_of(row), getattr(row, "input_json", None))

    def _dispatch_of(
        self, session: Session, row: WorkingRow, headers: dict[str, str] | None, events: list[Event], now: datetime
    ) -> Dispatch | None:
        """The rest of the plan from the row's current step, with a new step secret; for a stage, its members to send
        (`_enter_stage`: None when the stage ended the operation instead). The plan and input come with the row when it
        was read with them (`_locked` with_input): a second SELECT was 3% of a Resume (py-spy)."""
        if "plan" in row.__dict__ and "input_json" in row.__dict__:
            plan, input_json = row.__dict__["plan"], row.__dict__["input_json"]
        else:
            plan, input_json = session.execute(
                select(OPERATIONS.c.plan, OPERATIONS.c.input_json).where(OPERATIONS.c.id == row.id)
            ).one()
        row.step_secret = new_step_secret()  # every dispatch its own: the steps of an earlier one can change nothing
        dispatch = dispatch_from(
            row.id, plan, row.current_step, input_json, row.result_json, row.attempt, row.step_secret, headers
        )
        if row.current_step < len(plan) and stages.is_stage(plan[row.current_step]):
            return self._enter_stage(session, events, row, dispatch, now)
        return dispatch

    def _enqueue(self, session: Session, dispatch: Dispatch, now: datetime) -> OutboxId:
        """Note in the caller's transaction that this dispatch is to be sent.

        The entry names the dispatch (operation, attempt, first step), not its
        messages: the sweep rebuilds them from the operation row, which holds
        everything a dispatch is made of. Serialising the chain into the
        outbox cost the single SQLite writer ~0.14 ms of a start's ~0.57 ms
        (py-spy --gil, bench start_rate).
        """
        values = {
            "operation_id": dispatch.operation_id, "attempt": dispatch.attempt, "step": dispatch.start, "created_at": now,
            "members": list(dispatch.members) if dispatch.members is not None else None,
        }  # fmt: skip
        if self.sqlite is not None:
            return self.sqlite.insert(INSERT_OUTBOX, values)
        return int(session.connection().execute(INSERT_OUTBOX, values).inserted_primary_key[0])  # type: ignore[index]

    def dispatched(self, secret: str | None, token: str) -> bool:
        """Whether a report presenting `token` comes from the current dispatch of the operation whose secret is `secret`.

        An empty token counts only when step tokens are not required (workers older than them).
        """
        if not token:
            return not self.require_step_tokens
        return bool(secret) and hmac.compare_digest(secret.encode(), token.encode())  # type: ignore[union-attr]  # bool(secret)

    def _execute(self, session: Session, statement: Any, params: dict[str, Any]) -> int:
        """A one-row write statement: on the SQLite writer's own connection, else through the session; rows it changed."""
        if self.sqlite is not None:
            return self.sqlite.execute(statement, params)
        return session.connection().execute(statement, params).rowcount

    def _execute_many(self, session: Session, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
        """A one-row write statement once per row of parameters (all with the same keys), as `_execute`."""
        if self.sqlite is not None:
            self.sqlite.execute_many(statement, rows)
        elif rows:
            session.connection().execute(statement, list(rows))

    def _numbering(self, session: Session, operation_id: str) -> states.Numbering:
        """How users count the operation's steps (from its plan, which never changes, so it is cached)."""
        numbering = self._numberings.get(operation_id)
        if numbering is None:
            plan = session.scalar(select(OperationRow.plan).where(OperationRow.id == operation_id)) or ()
            numbering = states.Numbering.of(plan)
            self._remember_numbering(operation_id, numbering)
        return numbering

    def _remember_numbering(self, operation_id: str, numbering: states.Numbering) -> None:
        if len(self._numberings) >= NUMBERING_CACHE:
            self._numberings.pop(next(iter(self._numberings)))
        self._numberings[operation_id] = numbering

    def _apply(
        self,
        session: Session,
        events: list[Event],
        row: WorkingRow,
        transition: states.Transition,
        now: datetime,
        actor: str = "",
        reason: str = "",
    ) -> None:
        if transition.state is None or transition.event is None:
            return
        if transition.state not in ACTIVE and row.members_done > row.members_announced:
            self._announce(session, events, row, now)  # the members the stage recorded, named before it stops
        self._timers(row, transition.state, now)
        row.state = transition.state
        if transition.state not in ACTIVE:
            row.lease_expires_at = None
        if transition.state.terminal:
            row.ended_at = now
        if transition.state is State.PAUSED or transition.state.terminal:
            row.pause_before_step = 0  # a breakpoint took effect, or the operation stopped or ended before it
        self._append(session, events, row, transition.event, transition.message, now, actor, reason)

    @staticmethod
    def _timers(row: WorkingRow, after: State, now: datetime) -> None:
        """Keep the operation's clocks (timers.py) as it goes to `after`: the deadline's running time, the pause timeout."""
        before = State(row.state)
        if row.deadline_seconds is not None:
            at = _aware(row.deadline_at) if row.deadline_at is not None else None
            row.deadline_used_seconds, row.deadline_at = timers.clock(
                before, after, row.deadline_seconds, row.deadline_used_seconds, at, now
            )
            if timers.finished_in_time(after, row.error):
                row.error = None
        if row.pause_timeout_seconds is not None:
            if timers.keeps_pause_timeout(after):
                due = _aware(row.pause_due_at) if row.pause_due_at is not None else None
                row.pause_due_at = timers.pause_due(after, row.pause_timeout_seconds, due, now)
            else:
                row.pause_timeout_seconds, row.pause_on_timeout, row.pause_due_at = None, "", None

    def _append(
        self,
        session: Session,
        events: list[Event],
        row: WorkingRow,
        type_: EventType,
        message: str,
        now: datetime,
        actor: str = "",
        reason: str = "",
    ) -> None:
        """Add the next event of `row` (seq = last_seq + 1, gap-free under the row lock)."""
        row.last_seq += 1
        row.updated_at = now
        snapshot = snapshot_of(row)
        values = {
            "operation_id": row.id, "seq": row.last_seq, "type": type_, "message": message, "state": row.state,
            "snapshot": snapshot, "created_at": now, "actor": actor, "reason": reason,
        }  # fmt: skip
        if (deferred := self.postgres_writer.deferred) is not None:
            deferred.inserts.append((INSERT_EVENT, values))
        else:
            self._execute(session, INSERT_EVENT, values)
        events.append(Event(row.id, row.last_seq, type_, message, now.timestamp(), snapshot, actor=actor, reason=reason))

    @staticmethod
    def _asks(row: WorkingRow, numbering: states.Numbering) -> bool:
        """Whether the operation's breakpoint is near (the user's step before it runs): then the stop flag is up and
        asks workers to check in with the daemon at each boundary, which pauses the operation at the breakpoint."""
        number = row.pause_before_step
        return bool(number) and State(row.state) is State.RUNNING and row.current_step >= numbering.boundary_before(number) - 1

    # -- what the core calls in the other parts ------------------------------

    @abstractmethod
    def _enter_stage(
        self, session: Session, events: list[Event], row: WorkingRow, dispatch: Dispatch, now: datetime
    ) -> Dispatch | None:
        """The stage's members to send (store_stages.StageWrites)."""

    @abstractmethod
    def _members(
        self, session: Session, events: list[Event], operation_id: str, reports: Sequence[StepReport], now: datetime
    ) -> list[CheckpointResult]:
        """Record reports of a running stage's members (store_stages.StageWrites)."""

    @abstractmethod
    def _announce(self, session: Session, events: list[Event], row: WorkingRow, now: datetime, at_once: bool = True) -> None:
        """One MEMBER_COMPLETED for the members recorded since the last one (store_stages.StageWrites)."""

    @abstractmethod
    def _send_members(self, session: Session, operation_id: str, step: int, members: Sequence[int], now: datetime) -> None:
        """These members of the stage at `step` go out now, each with a lease (store_stages.StageWrites)."""

    @abstractmethod
    def _more_members(self, session: Session, row: WorkingRow, again: list[int]) -> Dispatch | None:
        """The members to send now in a running stage (store_stages.StageWrites)."""


def _move(row: WorkingRow, index: int, numbering: states.Numbering) -> None:
    """The operation is now at plan entry `index`: the user's step there (or the next one) and its name."""
    row.current_step = index
    row.current_step_name = numbering.name(index)
    row.step_number = numbering.number(index)


def new_step_secret() -> str:
    """A dispatch's secret (operations.step_secret, the pausable_step_token header of its steps): 256 random bits."""
    return random_ids.token_urlsafe(32)


def dispatch_from(
    operation_id: str,
    plan: Sequence[dict[str, Any]],
    step: int,
    input_json: str,
    result_json: str | None,
    attempt: int,
    secret: str,
    headers: dict[str, str] | None,
    members: tuple[int, ...] | None = None,
) -> Dispatch:
    """The plan from `step` on, fed the last step's result (the input before the first step); `members`: of the stage
    at `step`, the ones to send."""
    if step > 0 and result_json is not None:
        argument = parsed_results.parse(operation_id, result_json)
    else:
        argument = parsed_inputs.parse(operation_id, input_json)
    return Dispatch(operation_id, plan, step, argument, attempt, headers or {}, secret, members)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def delete_operations(session: Session, ids: Sequence[str]) -> None:
    """Delete operations and every row that refers to them (events, labels, idempotency keys, the outbox, ...)."""
    if not ids:
        return
    operations = OperationRow.__table__
    for table in Base.metadata.sorted_tables:
        for key in table.foreign_keys:
            if key.column.table is operations:
                session.execute(delete(table).where(key.parent.in_(ids)))
    session.execute(delete(OperationRow).where(OperationRow.id.in_(ids)))
