"""Reading the store: operations, events, workflows; rows become domain types (domain.py) here.

Reads run on the async engine's pool and never lock (SQLite in WAL mode
lets readers go on while the writer thread commits).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, TextClause, bindparam, exists, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import defer, undefer

from pausable.server import event_rows, jsontext, limits, offload, parsed, states
from pausable.server.domain import (
    Event,
    NotFound,
    Operation,
    OperationFilter,
    Page,
    StepRecord,
    Workflow,
    decode_cursor,
    encode_cursor,
)
from pausable.server.errors import InvalidArgument
from pausable.server.event_rows import epoch
from pausable.server.models import EventRow, LabelRow, OperationRow, StepResultRow, WorkflowRow
from pausable.server.states import ACTIVE, State

WORKFLOW_CACHE_SECONDS = 5.0
HISTORY_LIMIT = 1000  # step history entries and forks GetOperation returns (the newest)
CURSOR_ORDER = (EventRow.tx, EventRow.id)
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


def snapshot_of(row: Any, with_result: bool = True) -> dict[str, Any]:
    """The operation in a row (an OperationRow, a Core row or the store's plain row object) as the JSON kept with
    each event; `Operation.from_dict` reads it back. Without `with_result` its result is None and the row's
    result_json is not touched (it may not have been read). A large result's text goes along (jsontext.Spliced): the
    store writes that text as it is instead of encoding the value again."""
    snapshot = {
        "id": row.id,
        "workflow": row.workflow,
        "state": str(row.state),
        "current_step": row.current_step,
        "total_steps": row.total_steps,
        "current_step_name": row.current_step_name,
        "progress": row.progress,
        "progress_message": row.progress_message,
        "result": parsed.results.parse(row.id, row.result_json) if with_result and row.result_json is not None else None,
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
    if row.parent_id:  # only forks carry it: every event keeps a snapshot
        snapshot["parent_id"], snapshot["forked_from_step"] = row.parent_id, row.forked_from_step
    if getattr(row, "pause_before_step", 0):  # a pending breakpoint (only then: most snapshots never have one)
        snapshot["pause_before_step"] = row.pause_before_step
    # Only on operations that have them: most have neither, and every event keeps a snapshot.
    if row.deadline_seconds is not None:
        snapshot["deadline_seconds"] = row.deadline_seconds
        snapshot["deadline_used_seconds"] = row.deadline_used_seconds
        snapshot["deadline_time"] = epoch(row.deadline_at)
    if getattr(row, "members_total", 0):  # while a stage runs (stages.py)
        snapshot["stage"] = [row.members_total, row.members_done, row.members_running]
    if row.pause_on_timeout:
        snapshot["pause_timeout_time"] = epoch(row.pause_due_at)
        snapshot["pause_on_timeout"] = row.pause_on_timeout
    if with_result and row.result_json is not None and offload.large(len(row.result_json)):
        return jsontext.Spliced(snapshot, "result", row.result_json)
    return snapshot


def operation_of(row: Any, with_input: bool = False, with_result: bool = True) -> Operation:
    """The operation in a row; its input only `with_input` (the row must then hold input_json)."""
    return Operation.from_dict(snapshot_of(row, with_result), row.input_json if with_input else None)


async def operation_with_input(row: Any) -> Operation:
    """`operation_of` with the input, in a thread when the result is large: parsing a 1 MiB result takes tens of ms
    (43 ms measured; see convert.heavy)."""
    if row.result_json is not None and len(row.result_json) > limits.current.offload_json_bytes:
        return await offload.off_loop(lambda: operation_of(row, True))
    return operation_of(row, with_input=True)


def operations_of(rows: Sequence[Any]) -> list[Operation]:
    return [operation_of(row, with_input=True) for row in rows]


def workflow_of(row: WorkflowRow) -> Workflow:
    return Workflow(row.name, list(row.plan), row.description, row.input_schema, row.max_attempts, row.registered_at)


def filtered(where: OperationFilter, query: AnySelect) -> AnySelect:
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
        # Built once: building the page query costs about 2 ms of SQLAlchemy per call, more than running it.
        self._events_after = event_rows.page_query(
            select(EventRow.id, EventRow.seq)
            .where(EventRow.operation_id == bindparam("operation_id"), EventRow.seq > bindparam("after_seq"))
            .order_by(EventRow.seq)
            .limit(bindparam("limit")),
            ("seq",),
            self.postgres,
        )
        after_cursor = tuple_(EventRow.tx, EventRow.id) > tuple_(bindparam("tx"), bindparam("event_id"))
        candidates = select(EventRow.id, EventRow.tx).where(after_cursor, *self._visible()).order_by(*CURSOR_ORDER)
        self._events_with_state = (
            event_rows.page_query(candidates.limit(bindparam("limit")), ("tx", "id"), self.postgres)
            .add_columns(OperationRow.state)
            .join(OperationRow, OperationRow.id == EventRow.operation_id)
        )

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
        return await operation_with_input(row)

    async def step_history(self, operation_id: str, with_results: bool) -> list[StepRecord]:
        """The newest HISTORY_LIMIT entries of the operation's step history, oldest first. `with_results`: each with its
        values while they stay within `list_page_bytes` in all (later ones have none; result_bytes tells their size)."""
        columns = [c for c in StepResultRow.__table__.c if with_results or c.key not in ("result_json", "previous_json")]
        query = (
            select(*columns)
            .where(StepResultRow.operation_id == operation_id)
            .order_by(StepResultRow.id.desc())
            .limit(HISTORY_LIMIT)
        )
        async with self.sessions() as session:
            rows = list(reversed((await session.execute(query)).all()))
        budget = limits.current.list_page_bytes
        records = []
        for row in rows:
            result_json = previous_json = None
            if with_results:
                budget -= len(row.result_json or "") + len(row.previous_json or "")
                if budget >= 0:
                    result_json, previous_json = row.result_json, row.previous_json
            records.append(
                StepRecord(
                    kind=row.kind,
                    step=row.step,
                    step_number=row.step_number,
                    name=row.name,
                    attempt=row.attempt,
                    start_time=epoch(row.started_at),
                    end_time=epoch(row.ended_at),
                    result_bytes=row.result_bytes,
                    result_json=result_json,
                    previous_json=previous_json,
                )
            )
        return records

    async def forks_of(self, operation_id: str) -> list[str]:
        """Ids of the operations forked from this one, oldest first (at most HISTORY_LIMIT)."""
        query = select(OperationRow.id).where(OperationRow.parent_id == operation_id).order_by(OperationRow.id)
        async with self.sessions() as session:
            return list((await session.scalars(query.limit(HISTORY_LIMIT))).all())

    async def fork_source(self, operation_id: str, from_step: int) -> tuple[Operation, list[Any], int, str | None]:
        """What a fork of the operation at the user's step `from_step` needs: the operation (with its input), its
        plan, the plan index of that step, and the value the step received: the newest recorded value of a step
        before it (None: it is the first step, or nothing before it was recorded; see Store._record_step)."""
        async with self.sessions() as session:
            row = await session.get(
                OperationRow, operation_id, options=[undefer(OperationRow.input_json), undefer(OperationRow.plan)]
            )
            if row is None:
                raise NotFound(operation_id)
            plan = list(row.plan)
            try:
                start = states.fork_start(from_step, states.Numbering.of(plan))
            except ValueError as error:
                raise InvalidArgument(str(error)) from None
            value = None
            if start > 0:
                value = await session.scalar(
                    select(StepResultRow.result_json)
                    .where(
                        StepResultRow.operation_id == operation_id,
                        StepResultRow.step < start,
                        StepResultRow.kind.in_(("result", "input")),
                    )
                    .order_by(StepResultRow.step.desc(), StepResultRow.id.desc())
                    .limit(1)
                )
            operation = await operation_with_input(row)
        return operation, plan, start, value

    async def by_request_id(self, request_id: str, requester: str = "") -> tuple[Operation, str | None] | None:
        """The operation `requester` started with `request_id`, and the hash of that request (None before revision 0004)."""
        async with self.sessions() as session:
            query = (
                select(OperationRow)
                .options(undefer(OperationRow.input_json))
                .where(OperationRow.request_id == request_id, OperationRow.requester == requester)
            )
            row = await session.scalar(query)
        return (await operation_with_input(row), row.request_hash) if row is not None else None

    async def list_operations(
        self, where: OperationFilter, *, limit: int, before_id: str | None, values: bool = True
    ) -> Page[Operation]:
        """Newest first; keyset pagination on the time-ordered id, stable while operations are added.

        Without `values` (ListOperations' BASIC view) inputs and results are not read at all. With them, only the
        rows whose input and result text fit in `list_page_bytes` are read (at least one; the page's `more` then says
        it stopped early), and they are parsed in a thread when that text is over `offload_json_bytes` in all.
        """
        newest = filtered(where, select(OperationRow.id)).order_by(OperationRow.id.desc()).limit(limit)
        if before_id:
            newest = newest.where(OperationRow.id < before_id)
        async with self.sessions() as session:
            if not values:
                query = filtered(where, select(OperationRow).options(defer(OperationRow.result_json, raiseload=True)))
                query = query.order_by(OperationRow.id.desc()).limit(limit)
                if before_id:
                    query = query.where(OperationRow.id < before_id)
                rows = (await session.scalars(query)).all()
                return Page(operation_of(row, with_result=False) for row in rows)
            size = event_rows.text_size(OperationRow.input_json, self.postgres) + event_rows.text_size(
                OperationRow.result_json, self.postgres
            )
            found = (await session.execute(newest.add_columns(size))).all()
            count = event_rows.within_budget([text_size for _id, text_size in found], limits.current.list_page_bytes)
            ids = [id_ for id_, _size in found[:count]]
            query = select(OperationRow).options(undefer(OperationRow.input_json)).where(OperationRow.id.in_(ids))
            rows = (await session.scalars(query.order_by(OperationRow.id.desc()))).all() if ids else []
        large = sum(len(row.input_json) + len(row.result_json or "") for row in rows) > limits.current.offload_json_bytes
        operations = await offload.off_loop_if(large, lambda: operations_of(rows))
        return Page(operations, more=count < len(found))

    async def events_matching(self, where: OperationFilter, after: str, limit: int = 500) -> Page[Event]:
        """Events of every operation matching `where`, after the global cursor `after`, in a stable order; a page is
        bounded in bytes too (event_rows).

        On Postgres, ids are handed out before commit, so an event is shown
        only once every transaction older than its own has ended
        (`pg_snapshot_xmin`): nothing can later appear before a cursor.
        """
        candidates = select(EventRow.id, EventRow.tx).join(OperationRow, OperationRow.id == EventRow.operation_id)
        candidates = filtered(where, candidates).where(*self._after_cursor(after)).order_by(*CURSOR_ORDER).limit(limit)
        async with self.sessions() as session:
            query = event_rows.page_query(candidates, ("tx", "id"), self.postgres)
            found = (await session.execute(query, event_rows.budget())).all()
        rows, more = event_rows.fitting(found, limit)
        return Page(await event_rows.parse(rows), more)

    async def events_with_state(self, after: str, limit: int = 500) -> Page[tuple[Event, State]]:
        """Every operation's events after the global cursor `after`, each with its operation's current state: what
        `events_matching` would filter on, for the one shared reader of WatchEvents (watching.GlobalFeed)."""
        tx, event_id = decode_cursor(after)
        parameters = {"tx": tx, "event_id": event_id, "limit": limit, **event_rows.budget()}
        async with self.sessions() as session:
            found = (await session.execute(self._events_with_state, parameters)).all()
        rows, more = event_rows.fitting(found, limit)
        events = await event_rows.parse(rows)
        return Page(((event, State(row.state)) for event, row in zip(events, rows, strict=True)), more)

    def _after_cursor(self, after: str) -> list[ColumnElement[bool] | TextClause]:
        """The events after the global cursor `after` (on Postgres, only those no older transaction can still
        precede: see events_matching)."""
        tx, event_id = decode_cursor(after)
        return [tuple_(EventRow.tx, EventRow.id) > tuple_(tx, event_id), *self._visible()]

    def _visible(self) -> list[TextClause]:
        """On Postgres, only events no older transaction can still precede (see events_matching)."""
        return [text("events.tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint")] if self.postgres else []

    async def newest_cursor(self) -> str:
        """The cursor of the newest event `events_matching` could return now ("" when none): nothing can later appear
        at or before it."""
        query = select(EventRow.tx, EventRow.id).order_by(EventRow.tx.desc(), EventRow.id.desc()).limit(1)
        if self.postgres:
            query = query.where(text("events.tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
        async with self.sessions() as session:
            found = (await session.execute(query)).one_or_none()
        return "" if found is None else encode_cursor(found[0], found[1])

    async def events_after(self, operation_id: str, after_seq: int, limit: int = 500) -> Page[Event]:
        """The operation's events after `after_seq`, in order, at most `limit` and `replay_page_bytes` (event_rows)."""
        parameters = {"operation_id": operation_id, "after_seq": after_seq, "limit": limit, **event_rows.budget()}
        async with self.sessions() as session:
            found = (await session.execute(self._events_after, parameters)).all()
        rows, more = event_rows.fitting(found, limit)
        return Page(await event_rows.parse(rows), more)
