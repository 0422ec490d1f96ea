"""Reading the store: operations, events, workflows; rows become domain types (domain.py) here.

Reads run on the async engine's pool and never lock (SQLite in WAL mode
lets readers go on while the writer thread commits).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, TextClause, exists, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import undefer

from pausable.server import limits
from pausable.server.domain import Event, NotFound, Operation, OperationFilter, Workflow, decode_cursor, encode_cursor
from pausable.server.models import EventRow, LabelRow, OperationRow, WorkflowRow
from pausable.server.states import ACTIVE, EventType, State

WORKFLOW_CACHE_SECONDS = 5.0
CURSOR_ORDER = (EventRow.tx, EventRow.id)


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def snapshot_of(row: Any) -> dict[str, Any]:
    """The operation in a row (an OperationRow, a Core row or the store's plain row object) as the JSON kept with
    each event; `Operation.from_dict` reads it back."""
    return {
        "id": row.id,
        "workflow": row.workflow,
        "state": str(row.state),
        "current_step": row.current_step,
        "total_steps": row.total_steps,
        "current_step_name": row.current_step_name,
        "progress": row.progress,
        "progress_message": row.progress_message,
        "result": json.loads(row.result_json) if row.result_json is not None else None,
        "error": row.error,
        "requester": row.requester,
        "labels": row.labels,
        "create_time": epoch(row.created_at),
        "update_time": epoch(row.updated_at),
        "end_time": epoch(row.ended_at),
        "last_seq": row.last_seq,
        "attempt": row.attempt,
        "lease_expire_time": epoch(row.lease_expires_at),
        "step_number": row.step_number,
        "step_count": row.step_count,
    }


def operation_of(row: Any, with_input: bool = False) -> Operation:
    """The operation in a row; its input only `with_input` (the row must then hold input_json)."""
    return Operation.from_dict(snapshot_of(row), row.input_json if with_input else None)


def workflow_of(row: WorkflowRow) -> Workflow:
    return Workflow(row.name, list(row.plan), row.description, row.input_schema, row.max_attempts, row.registered_at)


def event_of(row: EventRow) -> Event:
    return Event(
        row.operation_id, row.seq, EventType(row.type), row.message, epoch(row.created_at) or 0.0,
        row.snapshot, encode_cursor(row.tx, row.id), row.actor or "",
    )  # fmt: skip


def filtered(where: OperationFilter, query: Select[Any]) -> Select[Any]:
    if where.states:
        query = query.where(OperationRow.state.in_([str(s) for s in where.states]))
    if where.workflow:
        query = query.where(OperationRow.workflow == where.workflow)
    if where.requester:
        query = query.where(OperationRow.requester == where.requester)
    if where.created_after is not None:
        query = query.where(OperationRow.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(OperationRow.created_at < where.created_before)
    if where.stuck:
        query = query.where(OperationRow.state.in_([str(s) for s in ACTIVE]), OperationRow.lease_expires_at < datetime.now(UTC))
    for key, value in where.labels.items():
        query = query.where(
            exists().where(LabelRow.operation_id == OperationRow.id, LabelRow.key == key, LabelRow.value == value)
        )
    return query


class Reads:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.postgres = engine.dialect.name == "postgresql"
        self._workflows: dict[str, tuple[Workflow, float]] = {}

    async def list_workflows(self) -> list[Workflow]:
        async with self.sessions() as session:
            return [workflow_of(row) for row in (await session.scalars(select(WorkflowRow).order_by(WorkflowRow.name))).all()]

    async def get_workflow(self, name: str) -> Workflow | None:
        """Cached for WORKFLOW_CACHE_SECONDS: StartOperation reads it on every call, and it rarely changes."""
        cached = self._workflows.get(name)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self.sessions() as session:
            row = await session.get(WorkflowRow, name)
        if row is None:
            return None
        workflow = workflow_of(row)
        self._workflows[name] = (workflow, time.monotonic() + WORKFLOW_CACHE_SECONDS)
        return workflow

    def forget_workflows(self) -> None:
        self._workflows.clear()

    async def get_operation(self, operation_id: str) -> Operation:
        async with self.sessions() as session:
            row = await session.get(OperationRow, operation_id, options=[undefer(OperationRow.input_json)])
        if row is None:
            raise NotFound(operation_id)
        if row.result_json is not None and len(row.result_json) > limits.current.offload_json_bytes:
            # Parsing a 1 MiB result takes tens of ms (43 ms measured): in a thread (see convert.heavy).
            return await asyncio.to_thread(operation_of, row, True)
        return operation_of(row, with_input=True)

    async def by_request_id(self, request_id: str, requester: str = "") -> tuple[Operation, str | None] | None:
        """The operation `requester` started with `request_id`, and the hash of that request (None before revision 0004)."""
        async with self.sessions() as session:
            query = (
                select(OperationRow)
                .options(undefer(OperationRow.input_json))
                .where(OperationRow.request_id == request_id, OperationRow.requester == requester)
            )
            row = await session.scalar(query)
            return (operation_of(row, with_input=True), row.request_hash) if row is not None else None

    async def list_operations(self, where: OperationFilter, *, limit: int, before_id: str | None) -> list[Operation]:
        """Newest first; keyset pagination on the time-ordered id, stable while operations are added."""
        query = (
            filtered(where, select(OperationRow).options(undefer(OperationRow.input_json)))
            .order_by(OperationRow.id.desc())
            .limit(limit)
        )
        if before_id:
            query = query.where(OperationRow.id < before_id)
        async with self.sessions() as session:
            return [operation_of(row, with_input=True) for row in (await session.scalars(query)).all()]

    async def events_matching(self, where: OperationFilter, after: str, limit: int = 500) -> list[Event]:
        """Events of every operation matching `where`, after the global cursor `after`, in a stable order.

        On Postgres, ids are handed out before commit, so an event is shown
        only once every transaction older than its own has ended
        (`pg_snapshot_xmin`): nothing can later appear before a cursor.
        """
        joined = select(EventRow).join(OperationRow, OperationRow.id == EventRow.operation_id)
        query = filtered(where, joined).where(*self._after_cursor(after)).order_by(*CURSOR_ORDER).limit(limit)
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [event_of(row) for row in rows]

    async def events_with_state(self, after: str, limit: int = 500) -> list[tuple[Event, State]]:
        """Every operation's events after the global cursor `after`, each with its operation's current state: what
        `events_matching` would filter on, for the one shared reader of WatchEvents (watching.GlobalFeed)."""
        joined = select(EventRow, OperationRow.state).join(OperationRow, OperationRow.id == EventRow.operation_id)
        query = joined.where(*self._after_cursor(after)).order_by(*CURSOR_ORDER).limit(limit)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [(event_of(row), State(state)) for row, state in rows]

    def _after_cursor(self, after: str) -> list[ColumnElement[bool] | TextClause]:
        """The events after the global cursor `after` (on Postgres, only those no older transaction can still
        precede: see events_matching)."""
        tx, event_id = decode_cursor(after)
        conditions: list[ColumnElement[bool] | TextClause] = [tuple_(EventRow.tx, EventRow.id) > tuple_(tx, event_id)]
        if self.postgres:
            conditions.append(text("events.tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
        return conditions

    async def newest_cursor(self) -> str:
        """The cursor of the newest event `events_matching` could return now ("" when none): nothing can later appear
        at or before it."""
        query = select(EventRow.tx, EventRow.id).order_by(EventRow.tx.desc(), EventRow.id.desc()).limit(1)
        if self.postgres:
            query = query.where(text("events.tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
        async with self.sessions() as session:
            found = (await session.execute(query)).one_or_none()
        return "" if found is None else encode_cursor(found[0], found[1])

    async def events_after(self, operation_id: str, after_seq: int, limit: int = 500) -> list[Event]:
        query = (
            select(EventRow)
            .where(EventRow.operation_id == operation_id, EventRow.seq > after_seq)
            .order_by(EventRow.seq)
            .limit(limit)
        )
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [event_of(row) for row in rows]
