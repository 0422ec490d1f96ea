"""The store: every read and write of operation state.

Each change locks the operation's row (SELECT ... FOR UPDATE on Postgres;
SQLite has a single writer, see writer.py), asks `pausable.server.states`
what the change means, and appends the resulting events with the next `seq`
values in the same transaction. After the commit the events go to
`on_commit` (the live fan-out); the store stays the source of truth.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, delete, event, exists, select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, undefer

from pausable.server import migrate, states
from pausable.server.models import Base, EventRow, LabelRow, OperationRow, RequestRow, WorkflowRow
from pausable.server.states import Decision, EventType, State
from pausable.server.writer import SqliteWriter, sqlite_pragmas

Result = TypeVar("Result")


class NotFound(Exception):
    pass


class AlreadyExists(Exception):
    pass


NOTIFY_CHANNEL = "pausable_events"
STEP_NAME_CACHE = 10_000
OPERATIONS = OperationRow.__table__
EVENTS = EventRow.__table__
LOCKED_COLUMNS = [column for column in OPERATIONS.c if column.key not in ("step_names", "plan", "input_json")]
ROW_CACHE = 10_000
# Built once with bound parameters: hot writes reuse the compiled statements.
SELECT_LOCKED = select(*LOCKED_COLUMNS).where(OPERATIONS.c.id == bindparam("locked_id")).with_for_update()
SELECT_LOCKED_WITH_INPUT = (
    select(*LOCKED_COLUMNS, OPERATIONS.c.input_json).where(OPERATIONS.c.id == bindparam("locked_id")).with_for_update()
)
UPDATE_OPERATION = OPERATIONS.update().where(OPERATIONS.c.id == bindparam("updated_id"))
INSERT_EVENT = EVENTS.insert()
INSERT_OPERATION = OPERATIONS.insert()
INSERT_LABEL = LabelRow.__table__.insert()
WORKFLOW_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Event:
    operation_id: str
    seq: int
    type: EventType
    message: str
    time: float
    snapshot: dict[str, Any]
    cursor: str = ""

    @property
    def terminal(self) -> bool:
        return State(self.snapshot["state"]).terminal


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    plan: list[dict[str, Any]]
    description: str = ""
    input_schema: dict[str, Any] | None = None

    @property
    def steps(self) -> list[str]:
        return [entry["task"] for entry in self.plan]


@dataclass(frozen=True)
class Change:
    """The outcome of a command: the operation afterwards, and whether it must be dispatched."""

    snapshot: dict[str, Any]
    dispatch: bool = False
    created: bool = True


@dataclass(frozen=True)
class StepReport:
    """A worker's report that `step` of an operation ended with `result_json` (see states.checkpoint)."""

    operation_id: str
    step: int
    result_json: str
    attempt: str = ""
    continued: bool = False


@dataclass(frozen=True)
class CheckpointResult:
    decision: Decision
    state: State


@dataclass(frozen=True)
class OperationFilter:
    """Which operations a list or a global event stream covers; empty fields match everything."""

    states: Sequence[State] = ()
    workflow: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    requester: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.states:
            query = query.where(OperationRow.state.in_([str(s) for s in self.states]))
        if self.workflow:
            query = query.where(OperationRow.workflow == self.workflow)
        if self.requester:
            query = query.where(OperationRow.requester == self.requester)
        if self.created_after is not None:
            query = query.where(OperationRow.created_at >= self.created_after)
        if self.created_before is not None:
            query = query.where(OperationRow.created_at < self.created_before)
        for key, value in self.labels.items():
            query = query.where(
                exists().where(LabelRow.operation_id == OperationRow.id, LabelRow.key == key, LabelRow.value == value)
            )
        return query


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
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def snapshot(row: Any) -> dict[str, Any]:
    """The operation as clients see it (without its input, which never changes)."""
    return {
        "id": row.id,
        "workflow": row.workflow,
        "state": row.state,
        "current_step": row.current_step,
        "total_steps": row.total_steps,
        "current_step_name": row.current_step_name,
        "progress": row.progress,
        "progress_message": row.progress_message,
        "result": json.loads(row.result_json) if row.result_json is not None else None,
        "error": row.error,
        "requester": row.requester,
        "labels": row.labels,
        "create_time": _epoch(row.created_at),
        "update_time": _epoch(row.updated_at),
        "end_time": _epoch(row.ended_at),
        "last_seq": row.last_seq,
    }


def full_snapshot(row: Any) -> dict[str, Any]:
    return {**snapshot(row), "input": json.loads(row.input_json)}


def make_engine(url: str) -> AsyncEngine:
    """The async engine. On SQLite it only reads (and migrates): writes go through writer.SqliteWriter."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=4, max_overflow=0, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


class Store:
    def __init__(self, engine: AsyncEngine, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.on_commit = on_commit or (lambda events: None)
        self.postgres = engine.dialect.name == "postgresql"
        self.replica = replica or secrets.token_hex(4)
        self._step_names: dict[str, tuple[str, ...]] = {}
        self._workflows: dict[str, tuple[WorkflowRow, float]] = {}
        # SQLite has one writer, this daemon: it keeps the rows of the active operations it wrote (see _locked).
        self._rows: dict[str, dict[str, Any]] | None = None if self.postgres else {}
        self.writer = (
            None
            if self.postgres
            else SqliteWriter(engine.url.render_as_string(hide_password=False), self.on_commit, self.forget_rows)
        )

    @classmethod
    async def open(cls, url: str, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> Store:
        engine = make_engine(url)
        await migrate.ensure_current(engine)
        return cls(engine, on_commit, replica)

    async def close(self) -> None:
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)
        await self.engine.dispose()

    # -- workflows ---------------------------------------------------------

    async def list_workflows(self) -> list[WorkflowRow]:
        async with self.sessions() as session:
            return list((await session.scalars(select(WorkflowRow).order_by(WorkflowRow.name))).all())

    async def get_workflow(self, name: str) -> WorkflowRow | None:
        """Cached for WORKFLOW_CACHE_SECONDS: StartOperation reads it on every call, and it rarely changes."""
        cached = self._workflows.get(name)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.sessions() as session:
            row = await session.get(WorkflowRow, name)
        if row is not None:
            self._workflows[name] = (row, time.monotonic() + WORKFLOW_CACHE_SECONDS)
        return row

    # -- reads ---------------------------------------------------------------

    async def get_operation(self, operation_id: str) -> dict[str, Any]:
        async with self.sessions() as session:
            row = await session.get(OperationRow, operation_id, options=[undefer(OperationRow.input_json)])
            if row is None:
                raise NotFound(operation_id)
            return full_snapshot(row)

    async def list_operations(self, where: OperationFilter, *, limit: int, before_id: str | None) -> list[dict[str, Any]]:
        """Newest first; keyset pagination on the time-ordered id, stable while operations are added."""
        query = (
            where.apply(select(OperationRow).options(undefer(OperationRow.input_json)))
            .order_by(OperationRow.id.desc())
            .limit(limit)
        )
        if before_id:
            query = query.where(OperationRow.id < before_id)
        async with self.sessions() as session:
            return [full_snapshot(row) for row in (await session.scalars(query)).all()]

    async def events_matching(self, where: OperationFilter, after: str, limit: int = 500) -> list[Event]:
        """Events of every operation matching `where`, after the global cursor `after`, in a stable order.

        On Postgres, ids are handed out before commit, so an event is shown
        only once every transaction older than its own has ended
        (`pg_snapshot_xmin`): nothing can later appear before a cursor.
        """
        tx, event_id = decode_cursor(after)
        query = (
            where.apply(select(EventRow).join(OperationRow, OperationRow.id == EventRow.operation_id))
            .where(tuple_(EventRow.tx, EventRow.id) > tuple_(tx, event_id))
            .order_by(EventRow.tx, EventRow.id)
            .limit(limit)
        )
        if self.postgres:
            query = query.where(text("events.tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [self._event(row) for row in rows]

    @staticmethod
    def _event(row: EventRow) -> Event:
        return Event(
            row.operation_id, row.seq, EventType(row.type), row.message, _epoch(row.created_at) or 0.0, row.snapshot,
            encode_cursor(row.tx, row.id),
        )  # fmt: skip

    async def events_after(self, operation_id: str, after_seq: int, limit: int = 500) -> list[Event]:
        query = (
            select(EventRow)
            .where(EventRow.operation_id == operation_id, EventRow.seq > after_seq)
            .order_by(EventRow.seq)
            .limit(limit)
        )
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [self._event(row) for row in rows]

    async def plan_of(self, operation_id: str) -> tuple[list[dict[str, Any]], int, Any]:
        """The stored plan, the step to start from and the argument to feed it."""
        query = select(OperationRow.plan, OperationRow.current_step, OperationRow.result_json, OperationRow.input_json)
        async with self.sessions() as session:
            found = (await session.execute(query.where(OperationRow.id == operation_id))).one_or_none()
        if found is None:
            raise NotFound(operation_id)
        plan, current_step, result_json, input_json = found
        return plan, current_step, json.loads(result_json if current_step > 0 and result_json is not None else input_json)

    # -- writes --------------------------------------------------------------
    #
    # Each write is a synchronous function over a Session (see writer.py):
    # it locks the operation's row, asks pausable.server.states what the
    # change means and appends the resulting events.

    async def write(self, fn: Callable[[Session, list[Event]], Result]) -> Result:
        """Run `fn` in a write transaction; publish its events once committed."""
        if self.writer is not None:
            return await self.writer.submit(fn)
        events: list[Event] = []

        def run(session: Session) -> Result:
            result = fn(session, events)
            if events:
                payload = f"{self.replica} {events[-1].operation_id} {events[-1].seq}"
                session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": payload})
            return result

        async with self.sessions.begin() as session:
            result = await session.run_sync(run)
        if events:
            self.on_commit(events)
        return result

    async def register_workflows(self, specs: Sequence[WorkflowSpec], worker: str) -> None:
        now = datetime.now(UTC)

        def register(session: Session, _events: list[Event]) -> None:
            for spec in specs:
                row = session.get(WorkflowRow, spec.name, with_for_update=True)
                if row is None:
                    row = WorkflowRow(name=spec.name)
                    session.add(row)
                row.description = spec.description
                row.steps = spec.steps
                row.plan = spec.plan
                row.input_schema = spec.input_schema
                row.worker = worker
                row.registered_at = now

        await self.write(register)
        self._workflows.clear()

    async def create_operation(
        self,
        workflow: WorkflowRow,
        *,
        input_json: str,
        request_id: str,
        requester: str,
        labels: dict[str, str],
    ) -> Change:
        """Insert the operation, PENDING then RUNNING in one transaction, before anything is dispatched.

        Marking it RUNNING before the chain is sent means a fast chain can never
        report on an operation that still looks PENDING (a defect of the seed recipe).
        """
        if request_id:
            existing = await self._by_request_id(request_id)
            if existing is not None:
                return self._same_request(existing, workflow.name)
        now = datetime.now(UTC)

        def create(session: Session, events: list[Event]) -> dict[str, Any]:
            values = {
                "id": new_operation_id(),
                "workflow": workflow.name,
                "state": State.PENDING,
                "current_step": 0,
                "current_step_name": workflow.steps[0],
                "total_steps": len(workflow.steps),
                "step_names": list(workflow.steps),
                "progress": 0.0,
                "progress_message": "",
                "input_json": input_json,
                "result_json": None,
                "plan": workflow.plan,
                "error": None,
                "requester": requester,
                "labels": dict(labels),
                "request_id": request_id or None,
                "created_at": now,
                "updated_at": now,
                "ended_at": None,
                "last_seq": 0,
            }
            # The row goes in as it ends up (RUNNING after its two events); the events show the way there.
            self._execute(session, INSERT_OPERATION, {**values, "state": State.RUNNING, "last_seq": 2})
            if labels:
                session.connection().execute(
                    INSERT_LABEL, [{"operation_id": values["id"], "key": k, "value": v} for k, v in labels.items()]
                )
            row = SimpleNamespace(**values)
            self._append(session, events, row, EventType.CREATED, f"created from workflow {workflow.name}", now)
            row.state = State.RUNNING
            self._append(session, events, row, EventType.STARTED, "dispatched to the workers", now)
            return full_snapshot(row)

        try:
            return Change(await self.write(create), dispatch=True)
        except IntegrityError:
            existing = await self._by_request_id(request_id) if request_id else None
            if existing is None:
                raise
            return self._same_request(existing, workflow.name)

    async def _by_request_id(self, request_id: str) -> OperationRow | None:
        async with self.sessions() as session:
            query = select(OperationRow).options(undefer(OperationRow.input_json)).where(OperationRow.request_id == request_id)
            return await session.scalar(query)

    @staticmethod
    def _same_request(row: OperationRow, workflow: str) -> Change:
        if row.workflow != workflow:
            raise AlreadyExists(
                f"request_id {row.request_id!r} was already used to start operation {row.id} of workflow "
                f"{row.workflow!r}; use a new request_id for a different request"
            )
        return Change(full_snapshot(row), created=False)

    async def command(self, operation_id: str, kind: str, request_id: str = "") -> Change:
        """Apply pause, resume or cancel (see pausable.server.states) as one compare-and-set."""
        decide = {"pause": states.pause, "resume": states.resume, "cancel": states.cancel}[kind]
        now = datetime.now(UTC)
        requests = RequestRow.__table__

        def apply(session: Session, events: list[Event]) -> Change:
            with self._locked(session, operation_id, with_input=True) as row:
                if request_id:
                    seen = session.execute(
                        select(requests.c.operation_id, requests.c.kind).where(requests.c.request_id == request_id)
                    ).first()
                    if seen is not None:
                        if seen.operation_id != operation_id or seen.kind != kind:
                            raise AlreadyExists(
                                f"request_id {request_id!r} was already used for {seen.kind} of operation "
                                f"{seen.operation_id}; use a new request_id"
                            )
                        return Change(full_snapshot(row), created=False)
                    session.execute(
                        requests.insert().values(request_id=request_id, operation_id=operation_id, kind=kind, created_at=now)
                    )
                transition = decide(State(row.state))
                self._apply(session, events, row, transition, now)
                return Change(full_snapshot(row), dispatch=transition.dispatch)

        return await self.write(apply)

    async def checkpoints(self, reports: Sequence[StepReport]) -> list[CheckpointResult | None]:
        """Record step reports in order, in one transaction; None for an operation that no longer exists."""
        now = datetime.now(UTC)

        def record(session: Session, events: list[Event]) -> list[CheckpointResult | None]:
            results: list[CheckpointResult | None] = []
            for report in reports:
                try:
                    results.append(self._checkpoint(session, events, report, now))
                except NotFound:
                    results.append(None)
            return results

        return await self.write(record)

    def _checkpoint(self, session: Session, events: list[Event], report: StepReport, now: datetime) -> CheckpointResult:
        """Record one report. Steps it skips over (plain tasks, or reports still on their way from another
        worker process, which will then change nothing) get their STEP_COMPLETED here, so every history lists every step."""
        operation_id, step, attempt = report.operation_id, report.step, report.attempt
        with self._locked(session, operation_id) as row:
            if attempt and attempt == row.checkpoint_attempt and step == row.checkpoint_step:
                return CheckpointResult(Decision(row.checkpoint_decision), State(row.state))
            outcome = states.checkpoint(State(row.state), row.current_step, step, row.total_steps, report.continued)
            if outcome.record_result:
                for skipped in range(row.current_step, step):
                    row.current_step = skipped + 1
                    row.current_step_name = self._step_name(session, operation_id, skipped + 1)
                    self._append(session, events, row, EventType.STEP_COMPLETED, states.step_done(skipped, row.total_steps), now)
                row.result_json = report.result_json
                row.current_step = step + 1
                row.current_step_name = self._step_name(session, operation_id, step + 1)
                row.progress, row.progress_message = 0.0, ""
            if outcome.transition.state is not None:
                row.checkpoint_attempt, row.checkpoint_step, row.checkpoint_decision = attempt, step, outcome.decision
            self._apply(session, events, row, outcome.transition, now)
            return CheckpointResult(outcome.decision, State(row.state))

    async def revert_resume(self, operation_id: str, message: str) -> None:
        """Put back to PAUSED an operation whose resumed chain never reached the broker."""
        now = datetime.now(UTC)

        def revert(session: Session, events: list[Event]) -> None:
            with self._locked(session, operation_id) as row:
                if row.state == State.RUNNING:
                    self._apply(session, events, row, states.Transition(State.PAUSED, EventType.PAUSED, message), now)

        await self.write(revert)

    async def report_progress(self, operation_id: str, step: int, fraction: float, message: str) -> State:
        now = datetime.now(UTC)

        def report(session: Session, events: list[Event]) -> State:
            with self._locked(session, operation_id) as row:
                if states.accepts_progress(State(row.state), row.current_step, step):
                    row.progress, row.progress_message = fraction, message
                    self._apply(session, events, row, states.Transition(State(row.state), EventType.PROGRESS, message), now)
                return State(row.state)

        return await self.write(report)

    async def fail(self, operation_id: str, step: int, error: dict[str, Any]) -> State:
        """Mark FAILED; `step` -1 means a failure outside any step (e.g. the broker refused the chain)."""
        now = datetime.now(UTC)

        def mark(session: Session, events: list[Event]) -> State:
            with self._locked(session, operation_id) as row:
                if step < 0 or states.accepts_failure(State(row.state), row.current_step, step):
                    row.error = error
                    transition = states.Transition(
                        State.FAILED, EventType.FAILED, f"{error.get('code', '')}: {error.get('message', '')}"
                    )
                    self._apply(session, events, row, transition, now)
                return State(row.state)

        return await self.write(mark)

    async def purge(self, ended_before: datetime, batch: int = 500) -> int:
        """Delete finished operations that ended before `ended_before`, with their events, one small batch per transaction."""
        terminal = [str(s) for s in states.TERMINAL]

        def purge_batch(session: Session, _events: list[Event]) -> int:
            ids = list(
                session.scalars(
                    select(OperationRow.id)
                    .where(OperationRow.ended_at < ended_before, OperationRow.state.in_(terminal))
                    .limit(batch)
                ).all()
            )
            delete_operations(session, ids)
            return len(ids)

        purged = 0
        while (count := await self.write(purge_batch)) == batch:
            purged += count
        return purged + count

    # -- helpers -------------------------------------------------------------

    @contextmanager
    def _locked(self, session: Session, operation_id: str, with_input: bool = False) -> Iterator[Any]:
        """The operation's row, locked, as a plain object; the columns changed in the block are written back.

        Plain Core statements: the ORM's unit of work cost more than the
        rest of a checkpoint together. On SQLite the row of an active
        operation comes from `_rows` when this daemon wrote it last.
        """
        before = None if with_input or self._rows is None else self._rows.get(operation_id)
        if before is None:
            query = SELECT_LOCKED_WITH_INPUT if with_input else SELECT_LOCKED
            found = session.connection().execute(query, {"locked_id": operation_id}).one_or_none()
            if found is None:
                raise NotFound(operation_id)
            before = dict(found._mapping)
        row = SimpleNamespace(**before)
        yield row
        after = vars(row)
        changed = {key: value for key, value in after.items() if before[key] != value}
        if changed:
            self._execute(session, UPDATE_OPERATION, {"updated_id": operation_id, **changed})
        if self._rows is not None:
            kept = dict(after)  # not the row's own dict: the caller may still hold the row
            kept.pop("input_json", None)
            self._remember(operation_id, kept)

    def _remember(self, operation_id: str, values: dict[str, Any]) -> None:
        """Keep the row (the LOCKED_COLUMNS) of an active operation for its next write (SQLite only); forget a finished one."""
        rows = self._rows
        assert rows is not None
        rows.pop(operation_id, None)
        if not State(values["state"]).terminal:
            if len(rows) >= ROW_CACHE:
                rows.pop(next(iter(rows)))
            rows[operation_id] = values

    def forget_rows(self) -> None:
        """A write or a commit failed: what `_rows` holds may not be what the store holds."""
        if self._rows is not None:
            self._rows.clear()

    def _execute(self, session: Session, statement: Any, params: dict[str, Any]) -> None:
        """A one-row write statement: on the SQLite writer's own connection, else through the session."""
        if self.writer is not None:
            self.writer.execute(statement, params)
        else:
            session.connection().execute(statement, params)

    def _step_name(self, session: Session, operation_id: str, index: int) -> str:
        """The name of step `index`; an operation's step names never change, so they are cached."""
        names = self._step_names.get(operation_id)
        if names is None:
            found = session.scalar(select(OperationRow.step_names).where(OperationRow.id == operation_id)) or ()
            names = tuple(sys.intern(name) for name in found)
            if len(self._step_names) >= STEP_NAME_CACHE:
                self._step_names.pop(next(iter(self._step_names)))
            self._step_names[operation_id] = names
        return names[index] if index < len(names) else ""

    def _apply(self, session: Session, events: list[Event], row: Any, transition: states.Transition, now: datetime) -> None:
        if transition.state is None or transition.event is None:
            return
        row.state = transition.state
        if transition.state.terminal:
            row.ended_at = now
        self._append(session, events, row, transition.event, transition.message, now)

    def _append(self, session: Session, events: list[Event], row: Any, type_: EventType, message: str, now: datetime) -> None:
        """Add the next event of `row` (seq = last_seq + 1, gap-free under the row lock)."""
        row.last_seq += 1
        row.updated_at = now
        snap = snapshot(row)
        values = {
            "operation_id": row.id,
            "seq": row.last_seq,
            "type": type_,
            "message": message,
            "state": row.state,
            "snapshot": snap,
            "created_at": now,
        }
        self._execute(session, INSERT_EVENT, values)
        events.append(Event(row.id, row.last_seq, type_, message, now.timestamp(), snap))


def delete_operations(session: Session, ids: Sequence[str]) -> None:
    """Delete operations and every row that refers to them (events, labels, idempotency keys, ...)."""
    if not ids:
        return
    operations = OperationRow.__table__
    for table in Base.metadata.sorted_tables:
        for key in table.foreign_keys:
            if key.column.table is operations:
                session.execute(delete(table).where(key.parent.in_(ids)))
    session.execute(delete(OperationRow).where(OperationRow.id.in_(ids)))
