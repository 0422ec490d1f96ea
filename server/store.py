"""Writing the store: every transition of operation state, each one transaction.

Each write locks the operation's row (SELECT ... FOR UPDATE on Postgres;
SQLite has a single writer, see writer.py), asks `pausable.server.states`
what the change means, and appends the resulting events with the next `seq`
values in the same transaction. After the commit the events go to
`on_commit` (the live fan-out); the store stays the source of truth. Chains
to dispatch are written to the outbox in the same transaction (engine.py
publishes them). Reads are in reads.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, event, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session

from pausable.server import bulk, jsontext, limits, migrate, stages, states, timers
from pausable.server.domain import (
    UNPARSED,
    AlreadyExists,
    BulkAction,
    CheckpointResult,
    Dispatch,
    Event,
    NotDispatched,
    NotFound,
    Operation,
    StepReport,
    Workflow,
    new_operation_id,
)
from pausable.server.errors import InvalidArgument
from pausable.server.event_rows import epoch
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
    WorkflowRow,
)
from pausable.server.parsed import inputs as parsed_inputs
from pausable.server.parsed import results as parsed_results
from pausable.server.postgres import PostgresWriter
from pausable.server.reads import Reads, filtered, snapshot_of
from pausable.server.states import ACTIVE, Command, Decision, EventType, LeaseVerdict, State
from pausable.server.writer import SqliteWriter, sqlite_pragmas

Result = TypeVar("Result")
OutboxId = int

NUMBERING_CACHE = 10_000
SECRET_BATCH = 500  # operation ids per query when RenewLeases reads step secrets
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
INSERT_LABEL = LabelRow.__table__.insert()
INSERT_STEP_RESULT = StepResultRow.__table__.insert()
STOPPING = (State.PAUSE_REQUESTED, State.CANCEL_REQUESTED)

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


def make_engine(url: str) -> AsyncEngine:
    """The async engine. On SQLite it only reads (and migrates): writes go through writer.SqliteWriter."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=4, max_overflow=0, pool_timeout=60, json_serializer=jsontext.dumps)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=20, max_overflow=20, pool_pre_ping=True, pool_timeout=10, json_serializer=jsontext.dumps
    )


def safe_publisher(publish: Callable[[list[Event]], None]) -> Callable[[list[Event]], None]:
    """`publish` that never raises into the commit path: the change is committed and answered whatever the fan-out does."""

    def published(events: list[Event]) -> None:
        try:
            publish(events)
        except Exception:
            log.exception("publishing %d committed events failed; watchers catch up from the store", len(events))

    return published


class Store(Reads):
    def __init__(self, engine: AsyncEngine, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> None:
        super().__init__(engine)
        self.on_commit = safe_publisher(on_commit or (lambda events: None))
        self.replica = replica or secrets.token_hex(4)
        self.lease = timedelta(seconds=60)
        # Reports without a step token are refused (settings.require_step_tokens); off: taken as the current dispatch's.
        self.require_step_tokens = True
        self._numberings: dict[str, states.Numbering] = {}
        self._sent: list[OutboxId] = []  # outbox entries published, to delete in the SQLite writer's next transaction
        self._sent_lock = threading.Lock()
        self._member_statements = member_statements(self.postgres)
        self.sqlite: SqliteWriter | None = None
        self.postgres_writer = PostgresWriter(self.sessions, self.replica, self.on_commit)  # unused on SQLite
        if not self.postgres:
            self.sqlite = SqliteWriter(engine.url.render_as_string(hide_password=False), self.on_commit)
            self.sqlite.first = self._delete_sent

    @classmethod
    async def open(cls, url: str, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> Store:
        engine = make_engine(url)
        await migrate.ensure_current(engine)
        return cls(engine, on_commit, replica)

    async def close(self) -> None:
        if self.sqlite is not None:
            if self._sent:  # a transaction deletes the entries sent last (or the sweep sends them again: harmless)
                with contextlib.suppress(Exception):
                    await self.write(lambda _session, _events: None)
            await asyncio.to_thread(self.sqlite.close)
        else:
            await self.postgres_writer.close()
        await self.engine.dispose()

    async def write(
        self, fn: Callable[[Session, list[Event]], Result], deferrable: bool = False, locks: Sequence[str] = ()
    ) -> Result:
        """Run `fn(session, events)` in a write transaction; its events are published once committed.

        `deferrable` and `locks` (Postgres): see PostgresWriter.submit."""
        if self.sqlite is not None:
            return await self.sqlite.submit(fn)
        return await self.postgres_writer.submit(fn, deferrable, locks)

    # -- workflows ---------------------------------------------------------

    async def register_workflows(self, workflows: Sequence[Workflow], worker: str) -> None:
        now = datetime.now(UTC)

        def register(session: Session, _events: list[Event]) -> None:
            for workflow in workflows:
                row = session.get(WorkflowRow, workflow.name, with_for_update=True)
                if row is None:
                    row = WorkflowRow(name=workflow.name)
                    session.add(row)
                row.description = workflow.description
                row.steps = workflow.steps
                row.plan = workflow.plan
                row.input_schema = workflow.input_schema
                row.max_attempts = workflow.max_attempts
                row.worker = worker
                row.registered_at = now

        await self.write(register)
        self.forget_workflows()

    # -- operations ----------------------------------------------------------

    async def create_operation(
        self,
        workflow: Workflow,
        *,
        input_json: str,
        request_id: str,
        requester: str,
        labels: dict[str, str],
        headers: dict[str, str] | None = None,
        request_hash: str | None = None,
        actor: str = "",
        input_data: Any = UNPARSED,
        fork: Fork | None = None,
        deadline_seconds: float | None = None,
    ) -> Change:
        """Insert the operation, PENDING then RUNNING in one transaction, with its chain in the outbox.

        Marking it RUNNING before the chain is sent means a fast chain can never
        report on an operation that still looks PENDING (a defect of the seed recipe).
        A request_id the same requester already used returns that operation
        (replayed), also when concurrent calls race: the loser's insert fails on
        the unique key (requester, request_id) and it reads the winner's row.
        The same request_id from another requester is another operation.
        `input_data`, when given, is input_json parsed, holding no NaN or infinity (as from a google.protobuf.Value).
        `fork`: the operation starts at a later step of its parent's plan, fed the value given there (see Fork).
        """
        if request_id:
            existing = await self.by_request_id(request_id, requester)
            if existing is not None:
                return self._same_request(existing, request_id, workflow.name, request_hash)
        now = datetime.now(UTC)

        def create(session: Session, events: list[Event]) -> Change:
            if (
                request_id
                and session.scalar(
                    select(OPERATIONS.c.id).where(OPERATIONS.c.request_id == request_id, OPERATIONS.c.requester == requester)
                )
                is not None
            ):
                raise _RequestSeen()
            steps = workflow.steps
            numbering = workflow.numbering
            operation_id = new_operation_id()
            start = fork.start if fork is not None else 0
            values = {
                "id": operation_id,
                "workflow": workflow.name,
                "state": State.PENDING,
                "current_step": start,
                "current_step_name": numbering.name(start),
                "total_steps": len(steps),
                "step_number": numbering.number(start),
                "step_count": numbering.count,
                "step_names": steps,
                "progress": 0.0,
                "progress_message": "",
                "input_json": input_json,
                "result_json": fork.result_json if fork is not None else None,
                "plan": workflow.plan,
                "error": None,
                "requester": requester,
                "labels": dict(labels),
                "request_id": request_id or None,
                "request_hash": request_hash,
                "created_at": now,
                "updated_at": now,
                "ended_at": None,
                "last_seq": 0,
                "attempt": 1,
                "max_attempts": workflow.max_attempts,
                "lease_expires_at": now + self.lease,
                "checkpoint_attempt": "",
                "checkpoint_step": -1,
                "checkpoint_decision": "",
                "step_secret": new_step_secret(),
                "parent_id": fork.parent_id if fork is not None else None,
                "forked_from_step": fork.from_step if fork is not None else 0,
                "step_started_at": now,
                "details_json": None,
                "details_step": -1,
                "pause_before_step": 0,
                "deadline_seconds": deadline_seconds,
                "deadline_used_seconds": 0.0,
                "deadline_at": None if deadline_seconds is None else now + timedelta(seconds=deadline_seconds),
                "pause_timeout_seconds": None,
                "pause_on_timeout": "",
                "pause_due_at": None,
                "members_total": 0,
                "members_done": 0,
                "members_running": 0,
                "members_next": 0,
                "members_announced": 0,
                "members_announced_at": None,
            }
            self._remember_numbering(operation_id, numbering)
            # Parsed once (json.loads of 1 MiB holds the GIL, so the loop, for 5-10 ms) and kept, when large, for the
            # replies; `input_data` came from the request's google.protobuf.Value: no NaN or infinity in it.
            if fork is not None and fork.result_json is not None:
                argument = parsed_results.parse(operation_id, fork.result_json)
            elif input_data is UNPARSED:
                argument = parsed_inputs.parse(operation_id, input_json)
            else:
                argument = input_data
                parsed_inputs.keep(operation_id, input_json, input_data, finite=True)
            members = self._first_members(workflow, start, argument, values) if numbering.is_stage(start) else None
            # The row goes in as it ends up (RUNNING after its events); the events show the way there.
            last_seq = 2 if members is None else 3
            self._execute(session, INSERT_OPERATION, {**values, "state": State.RUNNING, "last_seq": last_seq})
            if labels:
                session.connection().execute(
                    INSERT_LABEL, [{"operation_id": values["id"], "key": k, "value": v} for k, v in labels.items()]
                )
            row = WorkingRow(values)
            created = f"created from workflow {workflow.name}"
            reason = ""
            if fork is not None:
                created = f"forked from operation {fork.parent_id} at step {fork.from_step}/{numbering.count}"
                reason = fork.reason
            self._append(session, events, row, EventType.CREATED, created, now, actor, reason)
            row.state = State.RUNNING
            self._append(session, events, row, EventType.STARTED, "dispatched to the workers", now, actor)
            if members is not None:
                message = stages.started_message(numbering.number(start), numbering.count, row.members_total, members[1])
                self._append(session, events, row, EventType.STAGE_STARTED, message, now)
            if fork is not None and fork.result_json is not None:
                self._record_step(session, row, "input", numbering, fork.result_json, now, None, start - 1)
            dispatch = Dispatch(
                row.id, workflow.plan, start, argument, 1, headers or {}, row.step_secret or "", members and members[0]
            )
            outbox = self._enqueue(session, dispatch, now)
            # The STARTED event's snapshot is the row as committed: no second snapshot_of.
            return Change(Operation.from_dict(events[-1].snapshot, input_json), dispatch, outbox=outbox)

        try:
            return await self.write(create, deferrable=True)
        except (IntegrityError, _RequestSeen):
            existing = await self.by_request_id(request_id, requester) if request_id else None
            if existing is None:
                raise
            return self._same_request(existing, request_id, workflow.name, request_hash)

    @staticmethod
    def _first_members(workflow: Workflow, start: int, argument: Any, values: dict[str, Any]) -> tuple[tuple[int, ...], int]:
        """An operation that starts with a stage: the members sent first and the stage's max_parallel, its counters set
        in `values`. A map whose input is not a list, or is empty, is refused (INVALID_ARGUMENT): nothing was created."""
        entry = workflow.plan[start]
        try:
            total = stages.width(entry[stages.STAGE], argument, entry["task"])
        except stages.StageInputError as error:
            raise InvalidArgument(str(error).replace("the previous step's result", "the input")) from None
        if not total:
            raise InvalidArgument(f"stage {entry['task']!r} has no member to run: its input is an empty list")
        parallel = stages.max_parallel(entry[stages.STAGE])
        sent = tuple(range(min(parallel, total) if parallel else total))
        values.update(members_total=total, members_done=0, members_running=len(sent), members_next=len(sent))
        return sent, parallel

    @staticmethod
    def _same_request(found: tuple[Operation, str | None], request_id: str, workflow: str, request_hash: str | None) -> Change:
        """A repeated request_id (of the same requester) must repeat the request: same workflow, input and labels."""
        operation, stored_hash = found
        differs = operation.workflow != workflow
        if stored_hash is not None and request_hash is not None:
            differs = stored_hash != request_hash
        if differs:
            raise InvalidArgument(
                f"request_id {request_id!r} was already used to start operation {operation.id} with a different request "
                "(workflow, input or labels); use a new request_id for a different request"
            )
        return Change(operation, replayed=True)

    async def command(
        self,
        operation_id: str,
        kind: Command,
        request_id: str = "",
        headers: dict[str, str] | None = None,
        actor: str = "",
        reason: str = "",
        new_input: NewInput | None = None,
        before_step: int = 0,
        pause_timeout: tuple[float, timers.OnTimeout] | None = None,
    ) -> Change:
        """Apply pause, resume, cancel or retry (see pausable.server.states) as one compare-and-set; a resume or a retry
        queues the rest of the plan. `actor` and `reason` go on the event(s) it appends. `new_input` (resume only)
        replaces the stored last result first, checked against the next step's input schema: an InvalidArgument
        rolls the whole command back. `before_step` (with PAUSE): a breakpoint, see states.pause_before;
        InvalidArgument when the operation has no such step. A resume withdraws a breakpoint. `pause_timeout` (a pause's
        timeout in seconds and what to do then) is kept while the pause is requested or in effect (timers.py)."""
        now = datetime.now(UTC)

        def apply(session: Session, events: list[Event]) -> Change:
            with self._locked(session, operation_id, with_input=True) as row:
                if request_id:
                    seen = session.execute(
                        select(REQUESTS.c.operation_id, REQUESTS.c.kind).where(REQUESTS.c.request_id == request_id)
                    ).first()
                    if seen is not None:
                        if seen.operation_id != operation_id or seen.kind != kind:
                            raise AlreadyExists(
                                f"request_id {request_id!r} was already used for {seen.kind} of operation "
                                f"{seen.operation_id}; use a new request_id"
                            )
                        return Change(self._operation(row), replayed=True)
                    session.execute(
                        REQUESTS.insert().values(request_id=request_id, operation_id=operation_id, kind=str(kind), created_at=now)
                    )
                if kind is Command.PAUSE and before_step:
                    transition = self._breakpoint(session, row, before_step)
                else:
                    transition = states.command(kind, State(row.state))
                if kind is Command.RESUME and row.pause_before_step:
                    if transition.state is None:
                        transition = states.withdraw_breakpoint(State(row.state), row.pause_before_step, row.step_count)
                    row.pause_before_step = 0
                message = transition.message
                if new_input is not None:
                    message = self._replace_input(session, row, new_input, now)
                if kind is Command.RETRY:
                    self._rearm(session, row)
                self._apply(session, events, row, replace(transition, message=message), now, actor, reason)
                if pause_timeout is not None and timers.keeps_pause_timeout(State(row.state)):
                    row.pause_timeout_seconds, row.pause_on_timeout = pause_timeout[0], str(pause_timeout[1])
                    row.pause_due_at = timers.pause_due(State(row.state), pause_timeout[0], None, now)
                dispatch = outbox = None
                if transition.dispatch:
                    row.step_started_at = now
                    row.lease_expires_at = now + self.lease
                    dispatch = self._dispatch_of(session, row, headers, events, now)
                elif kind is Command.RESUME and row.members_total and State(row.state) is State.RUNNING:
                    dispatch = self._more_members(session, row, [])  # members that dropped under the withdrawn pause
                if dispatch is not None:
                    outbox = self._enqueue(session, dispatch, now)
                ask = self._asks(row, self._numbering(session, operation_id)) if row.pause_before_step else False
                return Change(self._operation(row), dispatch, outbox=outbox, ask=ask)

        return await self.write(apply, deferrable=True, locks=[operation_id])

    def _breakpoint(self, session: Session, row: WorkingRow, number: int) -> states.Transition:
        """Pause(before_step=`number`) of the locked operation: the transition, and the breakpoint kept on the row."""
        if not 1 <= number <= row.step_count:
            raise InvalidArgument(
                f"before_step {number} is not a step of operation {row.id}: send 1 to {row.step_count} (its steps, "
                "counted from 1), or 0 to pause at the next step boundary"
            )
        numbering = self._numbering(session, row.id)
        boundary = numbering.boundary_before(number)
        transition = states.pause_before(
            State(row.state), row.current_step, boundary, number, row.step_count, row.pause_before_step
        )
        row.pause_before_step = number
        return transition

    @staticmethod
    def _asks(row: WorkingRow, numbering: states.Numbering) -> bool:
        """Whether the operation's breakpoint is near (the user's step before it runs): then the stop flag is up and
        asks workers to check in with the daemon at each boundary, which pauses the operation at the breakpoint."""
        number = row.pause_before_step
        return bool(number) and State(row.state) is State.RUNNING and row.current_step >= numbering.boundary_before(number) - 1

    async def save_details(self, operation_id: str, step: int, attempt: int, step_token: str, details_json: str) -> State:
        """Keep what running step `step` (plan index) saved to continue from; its lease runs on. Changes nothing for a
        step of another attempt or an operation that is no longer active; NotDispatched for a token not the current one."""
        now = datetime.now(UTC)

        def save(session: Session, _events: list[Event]) -> tuple[State, bool]:
            with self._locked(session, operation_id) as row:
                state = State(row.state)
                if state not in ACTIVE or (attempt and attempt != row.attempt) or step < row.current_step:
                    return state, True
                if not self.dispatched(row.step_secret, step_token):
                    return state, False
                row.details_json, row.details_step = details_json, step
                row.lease_expires_at = now + self.lease
                return state, True

        state, accepted = await self.write(save, deferrable=True, locks=[operation_id])
        if not accepted:
            raise NotDispatched(f"details of step {step} of operation {operation_id}")
        return state

    async def step_details(self, operation_id: str, step: int, step_token: str) -> str | None:
        """The details saved for step `step` (plan index) of the operation, None when none were; NotDispatched for a
        token that is not the current dispatch's."""
        query = select(OPERATIONS.c.step_secret, OPERATIONS.c.details_json, OPERATIONS.c.details_step).where(
            OPERATIONS.c.id == operation_id
        )
        async with self.sessions() as session:
            found = (await session.execute(query)).one_or_none()
        if found is None:
            raise NotFound(operation_id)
        if not self.dispatched(found.step_secret, step_token):
            raise NotDispatched(f"details of step {step} of operation {operation_id}")
        return found.details_json if found.details_step == step else None

    async def checkpoints(self, reports: Sequence[StepReport]) -> list[CheckpointResult | None]:
        """Record step reports in order, in one transaction; None for an operation that no longer exists."""
        now = datetime.now(UTC)

        def record(session: Session, events: list[Event]) -> list[CheckpointResult | None]:
            results: list[CheckpointResult | None] = [None] * len(reports)
            members: dict[str, list[int]] = {}  # operation -> the indexes of its stage members' reports
            for index, report in enumerate(reports):
                if report.member is not None:
                    members.setdefault(report.operation_id, []).append(index)
                    continue
                with contextlib.suppress(NotFound):
                    results[index] = self._checkpoint(session, events, report, now)
            for operation_id, indexes in members.items():
                with contextlib.suppress(NotFound):
                    outcomes = self._members(session, events, operation_id, [reports[index] for index in indexes], now)
                    for index, outcome in zip(indexes, outcomes, strict=True):
                        results[index] = outcome
            return results

        # Members' reports read and write stage_members: not deferrable (see PostgresWriter.submit).
        staged = any(report.member is not None for report in reports)
        return await self.write(record, deferrable=not staged, locks=[report.operation_id for report in reports])

    def _checkpoint(self, session: Session, events: list[Event], report: StepReport, now: datetime) -> CheckpointResult:
        """Record one report. Steps it skips over (plain tasks, or reports still on their way from another
        worker process, which will then change nothing) get their STEP_COMPLETED here, so every history lists every step of
        the user's (entries the worker inserted, such as tappable's pause points, get none: states.Numbering).
        A report of an older attempt than the operation's changes nothing and stops its chain. A report that would
        change the operation must carry the current dispatch's step token; otherwise it is refused and changes nothing."""
        operation_id, step = report.operation_id, report.step
        with self._locked(session, operation_id) as row:
            if report.attempt_id and report.attempt_id == row.checkpoint_attempt and step == row.checkpoint_step:
                return CheckpointResult(Decision(row.checkpoint_decision), State(row.state), row.attempt)
            if report.attempt and report.attempt != row.attempt:
                return CheckpointResult(Decision.STOP, State(row.state), row.attempt)
            numbering = self._numbering(session, operation_id)
            pause_at = numbering.boundary_before(row.pause_before_step) if row.pause_before_step else -1
            outcome = states.checkpoint(
                State(row.state),
                row.current_step,
                step,
                row.total_steps,
                report.continued,
                numbering,
                report.next_not_started,
                report.in_step,
                pause_at,
            )
            resend = report.next_dropped and outcome.decision is Decision.CONTINUE
            changes = outcome.record_result or outcome.transition.state is not None or resend
            if changes and not self.dispatched(row.step_secret, report.step_token):
                return CheckpointResult(Decision.STOP, State(row.state), row.attempt, refused=True)
            if outcome.record_result:
                for skipped in range(row.current_step, step):
                    _move(row, skipped + 1, numbering)
                    if numbering.counts(skipped):  # a user's step; inserted entries (pause points) have no event
                        done = states.step_done(numbering.done(skipped), numbering.count)
                        self._append(session, events, row, EventType.STEP_COMPLETED, done, now)
                row.result_json = report.result_json
                if report.result is not UNPARSED:
                    parsed_results.keep(operation_id, report.result_json, report.result, report.result_finite)
                started = row.step_started_at if row.current_step == step else None
                self._record_step(session, row, "result", numbering, report.result_json, now, started, step)
                row.step_started_at = now
                _move(row, step + 1, numbering)
                row.progress, row.progress_message = 0.0, ""
                row.lease_expires_at = now + self.lease
            if outcome.transition.state is not None or resend:
                row.checkpoint_attempt, row.checkpoint_step, row.checkpoint_decision = report.attempt_id, step, outcome.decision
            self._apply(session, events, row, outcome.transition, now)
            saves = bool(report.details_json) and outcome.decision is not Decision.STOP  # none sent: keep what was saved
            if saves and self.dispatched(row.step_secret, report.step_token):
                row.details_json, row.details_step = report.details_json, step + 1
            ask = self._asks(row, numbering) if row.pause_before_step else False
            if outcome.decision is Decision.CONTINUE and outcome.record_result and numbering.is_stage(row.current_step):
                # The chain ended before a stage (dispatch.messages): the daemon sends its members.
                staged = self._dispatch_of(session, row, None, events, now)
                outbox = self._enqueue(session, staged, now) if staged is not None else None
                return CheckpointResult(outcome.decision, State(row.state), row.attempt, resend=staged, outbox=outbox, ask=ask)
            if not resend:
                return CheckpointResult(outcome.decision, State(row.state), row.attempt, ask=ask)
            # The worker dropped the next step on a stale stop flag: send it again, as the same attempt.
            row.lease_expires_at = now + self.lease
            dispatch = self._dispatch_of(session, row, None, events, now)
            outbox = self._enqueue(session, dispatch, now) if dispatch is not None else None
            return CheckpointResult(outcome.decision, State(row.state), row.attempt, resend=dispatch, outbox=outbox, ask=ask)

    async def report_progress(
        self, operation_id: str, step: int, fraction: float, message: str, attempt: int = 0, step_token: str = ""
    ) -> State:
        """Record the running step's progress; NotDispatched (nothing changed) when its step token is not the current one."""
        now = datetime.now(UTC)

        def report(session: Session, events: list[Event]) -> tuple[State, bool]:
            with self._locked(session, operation_id) as row:
                transition = states.progress(State(row.state), row.current_step, step, message)
                if transition.state is not None and (not attempt or attempt == row.attempt):
                    if not self.dispatched(row.step_secret, step_token):
                        return State(row.state), False
                    row.progress, row.progress_message = fraction, message
                    row.lease_expires_at = now + self.lease
                    self._apply(session, events, row, transition, now)
                return State(row.state), True

        state, accepted = await self.write(report, deferrable=True, locks=[operation_id])
        if not accepted:
            raise NotDispatched(f"progress of step {step} of operation {operation_id}")
        return state

    async def fail(self, operation_id: str, step: int, error: dict[str, Any], attempt: int = 0, step_token: str = "") -> State:
        """Mark FAILED; `step` -1 means a failure outside any step, decided by the daemon itself (no step token).

        NotDispatched (nothing changed) when a step's token is not the current dispatch's.
        """
        now = datetime.now(UTC)

        def mark(session: Session, events: list[Event]) -> tuple[State, bool]:
            with self._locked(session, operation_id) as row:
                if attempt and attempt != row.attempt:
                    return State(row.state), True
                transition = states.fail(
                    State(row.state), row.current_step, step, error.get("code", ""), error.get("message", "")
                )
                if transition.state is not None:
                    if step >= 0 and not self.dispatched(row.step_secret, step_token):  # -1: the daemon's own
                        return State(row.state), False
                    numbering = self._numbering(session, operation_id)
                    number = numbering.number(step) if step >= 0 else 0
                    row.error = {**error, "step_number": number}
                    if step >= 0:
                        started = row.step_started_at if row.current_step == step else None
                        self._record_step(session, row, "failed", numbering, None, now, started, step)
                    self._apply(session, events, row, transition, now)
                return State(row.state), True

        state, accepted = await self.write(mark, deferrable=True, locks=[operation_id])
        if not accepted:
            raise NotDispatched(f"failure of step {step} of operation {operation_id}")
        return state

    # -- leases and the outbox ------------------------------------------------

    async def renew_leases(self, held: Sequence[tuple[str, int, int, str]]) -> int:
        """Steps (operation, step, attempt, step token) a live worker holds: their leases run on from now.

        Only steps whose token is the current dispatch's; returns how many matched.
        """
        if not held:
            return 0
        until = datetime.now(UTC) + self.lease
        statement = (
            update(OPERATIONS)
            .where(
                OPERATIONS.c.id == bindparam("held_id"),
                OPERATIONS.c.current_step == bindparam("held_step"),
                # 0: a message dispatched before attempts existed (counts as the current attempt, as in reports)
                or_(OPERATIONS.c.attempt == bindparam("held_attempt"), bindparam("held_attempt") == 0),
                OPERATIONS.c.lease_expires_at.is_not(None),  # only active operations hold a lease
                # the secret checked below, in case a resume or a retry replaced it meanwhile (on Postgres)
                OPERATIONS.c.step_secret.is_not_distinct_from(bindparam("held_secret")),
            )
            .values(lease_expires_at=until)
        )

        def renew(session: Session, _events: list[Event]) -> int:
            secrets_of = self._step_secrets(session, {op for op, _step, _attempt, _token in held})
            dispatched = [
                (op, step, attempt, secrets_of[op])
                for op, step, attempt, token in held
                if op in secrets_of and self.dispatched(secrets_of[op], token)
            ]
            if not dispatched:
                return 0
            params = [
                {"held_id": op, "held_step": step, "held_attempt": attempt, "held_secret": secret}
                for op, step, attempt, secret in dispatched
            ]
            result = session.connection().execute(statement, params)
            if self.sqlite is not None:
                for op, _step, _attempt, _secret in dispatched:
                    cached = self.sqlite.rows.get(op)
                    if cached is not None and _attempt in (0, cached["attempt"]) and cached["current_step"] == _step:
                        cached["lease_expires_at"] = until
            return int(result.rowcount or 0)

        return await self.write(renew)

    async def lapsed(self, limit: int = 100) -> list[str]:
        """Active operations whose lease has lapsed, oldest lapse first.

        The state is tested inside an expression (coalesce) so that no index on it is used: SQLite chose
        ix_operations_state_id and read every RUNNING operation on each sweep (150 ms for 36,000 of them, every
        2.5 s, in bench/paired_start.py); ix_operations_lease_expires_at reads only the lapsed ones.
        """
        query = (
            select(OPERATIONS.c.id)
            .where(
                func.coalesce(OPERATIONS.c.state, "").in_([str(s) for s in ACTIVE]),
                OPERATIONS.c.lease_expires_at < datetime.now(UTC),
            )
            .order_by(OPERATIONS.c.lease_expires_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def extend_lease(self, operation_ids: Sequence[str]) -> None:
        """The steps of these operations wait on the broker: not lost, their leases run on."""
        now = datetime.now(UTC)

        def extend(session: Session, _events: list[Event]) -> None:
            for operation_id in operation_ids:
                with self._locked(session, operation_id) as row:
                    if State(row.state) in ACTIVE and row.lease_expires_at is not None and _aware(row.lease_expires_at) < now:
                        row.lease_expires_at = now + self.lease

        await self.write(extend, deferrable=True, locks=operation_ids)

    async def lease_lapsed(self, operation_id: str, reason: str) -> LeaseOutcome | None:
        """Settle one operation whose lease lapsed (see states.lapsed_lease): retry its step, fail it, or end its stop."""
        now = datetime.now(UTC)

        def settle(session: Session, events: list[Event]) -> LeaseOutcome | None:
            with self._locked(session, operation_id) as row:
                state = State(row.state)
                if row.lease_expires_at is None or _aware(row.lease_expires_at) >= now:
                    return None
                verdict = states.lapsed_lease(state, row.attempt, row.max_attempts)
                if verdict is None:
                    return None
                dispatch = outbox = None
                if verdict is LeaseVerdict.SETTLE:
                    row.lease_expires_at = None
                    row.members_running = 0  # a stage's members still out were lost too: Resume sends them again
                    self._apply(session, events, row, states.settle_lost(state, row.step_number, row.step_count, reason), now)
                elif verdict is LeaseVerdict.GIVE_UP:
                    row.lease_expires_at = None
                    row.error = {
                        "code": "WORKER_LOST",
                        "message": f"{reason}; step {row.step_number}/{row.step_count} was tried {row.attempt} times",
                        "step": row.current_step,
                        "step_name": row.current_step_name,
                        "step_number": row.step_number,
                    }
                    self._apply(
                        session, events, row, states.Transition(State.FAILED, EventType.FAILED, f"WORKER_LOST: {reason}"), now
                    )
                else:
                    row.attempt += 1
                    row.lease_expires_at = now + self.lease
                    row.step_started_at = now
                    row.progress, row.progress_message = 0.0, ""
                    self._apply(session, events, row, states.retried(row.step_number, row.step_count, row.attempt, reason), now)
                    dispatch = self._dispatch_of(session, row, None, events, now)
                    outbox = self._enqueue(session, dispatch, now) if dispatch is not None else None
                return LeaseOutcome(self._operation(row), verdict, dispatch, outbox)

        return await self.write(settle, deferrable=True, locks=[operation_id])

    # -- timers (timers.py): deadlines and pause timeouts ------------------------

    async def timers_due(self, limit: int = 100) -> tuple[list[str], list[str]]:
        """(operations whose running-time budget ran out, PAUSED operations whose pause timeout is due), each oldest
        first. Read through the indexes on deadline_at and pause_due_at (the state inside an expression, as in `lapsed`)."""
        now = datetime.now(UTC)
        state = func.coalesce(OPERATIONS.c.state, "")
        deadlines = (
            select(OPERATIONS.c.id)
            .where(OPERATIONS.c.deadline_at < now, state.in_([str(State.RUNNING), str(State.PAUSE_REQUESTED)]))
            .order_by(OPERATIONS.c.deadline_at)
            .limit(limit)
        )
        pauses = (
            select(OPERATIONS.c.id)
            .where(OPERATIONS.c.pause_due_at < now, state == str(State.PAUSED))
            .order_by(OPERATIONS.c.pause_due_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list((await session.scalars(deadlines)).all()), list((await session.scalars(pauses)).all())

    async def deadline_passed(self, operation_id: str) -> Change | None:
        """The operation's budget ran out: ask it to cancel (timers.deadline_passed) with error DEADLINE_EXCEEDED;
        None when it no longer applies (resumed on another replica meanwhile, paused, finished)."""
        now = datetime.now(UTC)

        def expire(session: Session, events: list[Event]) -> Change | None:
            with self._locked(session, operation_id) as row:
                if row.deadline_seconds is None or row.deadline_at is None or _aware(row.deadline_at) >= now:
                    return None
                used = timers.used_seconds(row.deadline_seconds, row.deadline_used_seconds, _aware(row.deadline_at), now)
                transition = timers.deadline_passed(State(row.state), row.deadline_seconds, used)
                if transition is None:
                    return None
                row.error = timers.deadline_error(row.step_number, row.current_step_name, row.current_step, row.deadline_seconds)
                self._apply(session, events, row, transition, now)
                return Change(self._operation(row))

        return await self.write(expire, deferrable=True, locks=[operation_id])

    async def pause_timed_out(self, operation_id: str) -> Change | None:
        """A PAUSED operation's pause timeout is due: resume it (the rest of its plan to the outbox) or cancel it."""
        now = datetime.now(UTC)

        def act(session: Session, events: list[Event]) -> Change | None:
            with self._locked(session, operation_id, with_input=True) as row:
                if row.pause_timeout_seconds is None or row.pause_due_at is None or _aware(row.pause_due_at) >= now:
                    return None
                transition = timers.pause_timed_out(
                    State(row.state), timers.OnTimeout(row.pause_on_timeout), row.pause_timeout_seconds
                )
                if transition is None:
                    return None
                self._apply(session, events, row, transition, now)
                dispatch = outbox = None
                if transition.dispatch:
                    row.lease_expires_at = now + self.lease
                    dispatch = self._dispatch_of(session, row, None, events, now)
                    outbox = self._enqueue(session, dispatch, now) if dispatch is not None else None
                return Change(self._operation(row), dispatch, outbox=outbox)

        return await self.write(act, deferrable=True, locks=[operation_id])

    # -- bulk actions (bulk.py) --------------------------------------------------

    async def create_bulk(
        self,
        kind: Command,
        *,
        operation_ids: Sequence[str] | None,
        selector: dict[str, Any] | None,
        request_id: str,
        requester: str,
        actor: str,
        reason: str,
        owner: str,
    ) -> tuple[BulkAction, bool]:
        """Record a bulk action, RUNNING, with how many operations it matches; (it, created). A request_id `requester`
        used already returns that action (INVALID_ARGUMENT if the request differs). `owner`: see BulkActionRow."""
        now = datetime.now(UTC)
        digest = bulk.request_hash(kind, operation_ids, selector, reason)
        ids = sorted(set(operation_ids)) if operation_ids is not None else None

        def existing(session: Session) -> tuple[BulkAction, bool] | None:
            if not request_id:
                return None
            found = session.execute(
                select(BULK).where(BULK.c.requester == requester, BULK.c.request_id == request_id)
            ).one_or_none()
            if found is None:
                return None
            if found.request_hash != digest:
                raise InvalidArgument(
                    f"request_id {request_id!r} was already used for bulk action {found.id}, a different request; "
                    "use a new request_id for a different request"
                )
            return bulk_of(found), False

        def create(session: Session, _events: list[Event]) -> tuple[BulkAction, bool]:
            seen = existing(session)
            if seen is not None:
                return seen
            if ids is not None:
                matched = len(ids)
            else:
                where = bulk.selector_filter(selector or {}, now)
                matched = int(session.scalar(filtered(where, select(func.count()).select_from(OperationRow))) or 0)
            values = {
                "id": new_operation_id(), "kind": str(kind), "state": bulk.RUNNING, "requester": requester,
                "request_id": request_id or None, "request_hash": digest, "actor": actor, "reason": reason,
                "owner": owner, "operation_ids": ids, "selector": selector, "cursor": "", "matched": matched,
                "done": 0, "skipped": 0, "failed": 0, "skipped_reasons": {}, "failures": [],
                "created_at": now, "updated_at": now, "ended_at": None,
            }  # fmt: skip
            session.execute(BULK.insert().values(**values))
            return bulk_of(WorkingRow(values)), True

        try:
            return await self.write(create)
        except IntegrityError:  # the same request_id, committed first by a concurrent call

            def again(session: Session, _events: list[Event]) -> tuple[BulkAction, bool]:
                seen = existing(session)
                assert seen is not None
                return seen

            return await self.write(again)

    async def get_bulk(self, bulk_id: str) -> BulkAction:
        async with self.sessions() as session:
            found = (await session.execute(select(BULK).where(BULK.c.id == bulk_id))).one_or_none()
        if found is None:
            raise NotFound(f"bulk action {bulk_id}")
        return bulk_of(found)

    async def running_bulks(self, limit: int = 100) -> list[str]:
        """Bulk actions not done yet, oldest first: what every replica's sweep takes on."""
        query = select(BULK.c.id).where(BULK.c.state == bulk.RUNNING).order_by(BULK.c.created_at).limit(limit)
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def bulk_batch(self, bulk_id: str, size: int = bulk.BATCH) -> tuple[list[Change], bool] | None:
        """Process the bulk action's next `size` operations in one transaction (see bulk.py): (the changes made, whether
        the action is DONE); None when another replica holds it now (Postgres) or it does not exist."""
        now = datetime.now(UTC)

        def run(session: Session, events: list[Event]) -> tuple[list[Change], bool] | None:
            query = select(BULK).where(BULK.c.id == bulk_id)
            if self.postgres:
                query = query.with_for_update(skip_locked=True)
            action = session.execute(query).one_or_none()
            if action is None:
                return None
            if action.state == bulk.DONE:
                return [], True
            kind = Command(action.kind)
            if action.operation_ids is not None:
                ids = [op for op in action.operation_ids if op > action.cursor][:size]
            else:
                where = bulk.selector_filter(action.selector or {}, _aware(action.created_at))
                ids = list(
                    session.scalars(
                        filtered(where, select(OperationRow.id))
                        .where(OperationRow.id > action.cursor)
                        .order_by(OperationRow.id)
                        .limit(size)
                    )
                )
            done, skipped, failed = action.done, action.skipped, action.failed
            reasons: dict[str, int] = dict(action.skipped_reasons)
            failures: list[dict[str, str]] = list(action.failures)
            changes: list[Change] = []
            for operation_id in ids:
                outcome: str | states.Transition
                try:
                    with self._locked(session, operation_id, with_input=kind is Command.RESUME) as row:
                        if action.owner and row.requester != action.owner:
                            outcome = "PERMISSION_DENIED: steering an operation you did not start needs role admin"
                            failed += 1
                            if len(failures) < bulk.MAX_FAILURES:
                                failures.append({"operation_id": operation_id, "message": outcome})
                            continue
                        outcome = bulk.verdict(kind, State(row.state))
                        if isinstance(outcome, str):
                            skipped += 1
                            reasons[outcome] = reasons.get(outcome, 0) + 1
                            continue
                        transition = replace(outcome, message=f"{outcome.message} (bulk action {bulk_id})")
                        self._apply(session, events, row, transition, now, action.actor, action.reason)
                        dispatch = outbox = None
                        if transition.dispatch:
                            row.lease_expires_at = now + self.lease
                            dispatch = self._dispatch_of(session, row, None, events, now)
                            outbox = self._enqueue(session, dispatch, now) if dispatch is not None else None
                        changes.append(Change(self._operation(row), dispatch, outbox=outbox))
                        done += 1
                except NotFound:
                    skipped += 1
                    reasons[bulk.NOT_FOUND] = reasons.get(bulk.NOT_FOUND, 0) + 1
            finished = len(ids) < size
            matched = action.matched
            if finished:
                matched, skipped, reasons = bulk.reconciled(matched, done, skipped, failed, reasons)
            session.execute(
                update(BULK)
                .where(BULK.c.id == bulk_id)
                .values(
                    cursor=ids[-1] if ids else action.cursor, matched=matched, done=done, skipped=skipped, failed=failed,
                    skipped_reasons=reasons, failures=failures, updated_at=now,
                    state=bulk.DONE if finished else bulk.RUNNING, ended_at=now if finished else None,
                )
            )  # fmt: skip
            return changes, finished

        return await self.write(run)

    async def sent(self, outbox_ids: Sequence[int]) -> None:
        """These outbox entries reached the broker."""
        if not outbox_ids:
            return

        rows = [{"outbox_id": outbox_id} for outbox_id in outbox_ids]

        def forget(session: Session, _events: list[Event]) -> None:
            if self.sqlite is not None:
                self.sqlite.execute_many(DELETE_OUTBOX, rows)
            else:
                session.connection().execute(DELETE_OUTBOX, rows)

        await self.write(forget)

    def sent_soon(self, outbox_id: OutboxId) -> None:
        """From any thread, SQLite only: this entry reached the broker. It is deleted first thing in the writer's
        next transaction, with every entry sent meanwhile (one statement, no transaction or thread wake-up of its
        own: a posted deletion woke the writer thread, and the loop again after it, once per published batch).
        The outbox sweep's own transaction comes before it claims anything, so it never sends these again."""
        assert self.sqlite is not None, "sent_soon is the SQLite writer's; use sent()"
        with self._sent_lock:
            self._sent.append(outbox_id)

    def _delete_sent(self) -> None:
        """(The SQLite writer's `first`.) Lost on a failed transaction: the sweep publishes those entries again,
        which is harmless."""
        assert self.sqlite is not None
        with self._sent_lock:
            if not self._sent:
                return
            sent, self._sent = self._sent, []
        self.sqlite.execute_many(DELETE_OUTBOX, [{"outbox_id": outbox_id} for outbox_id in sent])

    async def unsent(self, older_than: datetime, limit: int = 100) -> list[tuple[OutboxId, Dispatch]]:
        """Outbox entries written before `older_than` and still there (their publisher died, or is very slow), as dispatches.

        They are claimed by moving their time forward, so another replica's
        sweep does not take them too (a chain sent twice would still be
        harmless: its second copy's reports change nothing). An entry is
        dropped when nothing is left for it to send: its operation stopped,
        moved to a later attempt or past the entry's first step (so the chain
        reached the workers), or a newer entry of the operation replaces it.
        """
        now = datetime.now(UTC)
        query = (
            select(
                OUTBOX.c.id,
                OUTBOX.c.operation_id,
                OUTBOX.c.attempt,
                OUTBOX.c.step,
                OPERATIONS.c.state,
                OPERATIONS.c.attempt.label("current_attempt"),
                OPERATIONS.c.current_step,
                OPERATIONS.c.plan,
                OPERATIONS.c.input_json,
                OPERATIONS.c.result_json,
                OPERATIONS.c.step_secret,
                OUTBOX.c.members,
            )
            .join(OPERATIONS, OPERATIONS.c.id == OUTBOX.c.operation_id)
            .where(OUTBOX.c.created_at < older_than)
            .order_by(OUTBOX.c.id.desc())
            .limit(limit)
        )
        if self.postgres:
            query = query.with_for_update(of=OUTBOX, skip_locked=True)

        def claim(session: Session, _events: list[Event]) -> list[tuple[OutboxId, Dispatch]]:
            rows = session.execute(query).all()
            live: dict[str, Any] = {}
            for row in rows:
                current = State(row.state) in ACTIVE and (row.attempt, row.step) == (row.current_attempt, row.current_step)
                if current and (row.members is not None or row.operation_id not in live):
                    live[row.operation_id if row.members is None else f"{row.operation_id} {row.id}"] = row  # each stage dispatch
            claimed = [row.id for row in live.values()]
            stale = [row.id for row in rows if row.id not in claimed]
            if stale:
                session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(stale)))
            if claimed:
                session.execute(update(OUTBOX).where(OUTBOX.c.id.in_(claimed)).values(created_at=now))
            return [
                (
                    row.id,
                    dispatch_from(
                        row.operation_id,
                        row.plan,
                        row.step,
                        row.input_json,
                        row.result_json,
                        row.attempt,
                        row.step_secret or "",
                        None,
                        tuple(row.members) if row.members is not None else None,
                    ),
                )
                for row in sorted(live.values(), key=lambda row: row.id)
            ]

        return await self.write(claim)

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

    async def delete_finished(self, operation_id: str) -> None:
        """Delete a SUCCEEDED, FAILED or CANCELLED operation with its history (states.check_deletable)."""

        def remove(session: Session, _events: list[Event]) -> None:
            row = session.get(OperationRow, operation_id, with_for_update=True)
            if row is None:
                raise NotFound(operation_id)
            states.check_deletable(operation_id, State(row.state))
            delete_operations(session, [operation_id])

        await self.write(remove)

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

    def _replace_input(self, session: Session, row: WorkingRow, new_input: NewInput, now: datetime) -> str:
        """Resume with a new input: check it against the next step's input schema, keep the old and new values in the
        step history, and make it the stored last result. Returns the RESUMED event's message."""
        states.accepts_new_input(State(row.state))
        if row.members_done:
            raise states.InvalidTransition(
                f"the operation paused within a stage with {row.members_done}/{row.members_total} members done, whose "
                "results came from the input it has: a new input would mix them with results of another; resume without "
                "an input, or Fork it from that step with the new input"
            )
        if row.current_step == 0:
            raise states.InvalidTransition(
                "the operation paused before its first step, which receives the operation's input: that cannot be "
                "replaced; start a new operation, or Fork it from step 1 with the input"
            )
        plan = row.__dict__.get("plan") or session.scalar(select(OPERATIONS.c.plan).where(OPERATIONS.c.id == row.id)) or []
        numbering = states.Numbering.of(plan)
        receiving = next((at for at in range(row.current_step, len(plan)) if numbering.counts(at)), row.current_step)
        schema = plan[receiving].get("input_schema") if receiving < len(plan) else None
        new_input.check(numbering.number(receiving), numbering.name(receiving), schema)
        self._record_step(session, row, "input", numbering, new_input.text, now, None, row.current_step - 1, row.result_json)
        old = len(row.result_json.encode()) if row.result_json is not None else 0
        row.result_json = new_input.text
        return (
            f"resumed with a new input for step {row.step_number}/{row.step_count} ({old} bytes replaced by "
            f"{len(new_input.text.encode())}); the remaining steps were dispatched"
        )

    def _rearm(self, session: Session, row: WorkingRow) -> None:
        """Retry: the current step runs again as a new attempt, with the workflow's max_attempts from there on."""
        budget = session.scalar(select(WorkflowRow.max_attempts).where(WorkflowRow.name == row.workflow)) or row.max_attempts
        row.attempt += 1
        row.max_attempts = row.attempt - 1 + budget
        row.error = None
        row.ended_at = None
        row.progress, row.progress_message = 0.0, ""
        row.checkpoint_attempt, row.checkpoint_step, row.checkpoint_decision = "", -1, ""

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

    # -- stages (stages.py) ------------------------------------------------------

    def _enter_stage(
        self, session: Session, events: list[Event], row: WorkingRow, dispatch: Dispatch, now: datetime
    ) -> Dispatch | None:
        """Dispatch the members of the stage at the row's current step that have no recorded result (all of them the
        first time; after a pause, a retry or a lost worker only the unfinished ones), at most max_parallel. A stage with
        nothing left to run joins at once; a map whose input is not a list fails the operation (STAGE_INPUT_INVALID)."""
        step = row.current_step
        entry = dispatch.plan[step]
        numbering = self._numbering(session, row.id)
        try:
            total = stages.width(entry[stages.STAGE], dispatch.argument, entry["task"])
        except stages.StageInputError as error:
            row.error = {
                "code": error.code, "message": str(error), "step": step, "step_name": numbering.name(step),
                "step_number": numbering.number(step),
            }  # fmt: skip
            self._apply(session, events, row, states.Transition(State.FAILED, EventType.FAILED, f"{error.code}: {error}"), now)
            return None
        where = (MEMBERS.c.operation_id == row.id, MEMBERS.c.step == step)
        session.execute(delete(MEMBERS).where(*where, MEMBERS.c.result_json.is_(None)))  # dropped ones: sent now
        done = set(session.scalars(select(MEMBERS.c.member).where(*where)))
        fresh = not done and not row.members_total
        todo = [member for member in range(total) if member not in done]
        parallel = stages.max_parallel(entry[stages.STAGE])
        sent = todo[:parallel] if parallel else todo
        row.members_total, row.members_done, row.members_running = total, len(done), len(sent)
        row.members_next = sent[-1] + 1 if sent else total
        if fresh:
            row.members_announced, row.members_announced_at = 0, None
            message = stages.started_message(numbering.number(step), numbering.count, total, parallel)
            self._append(session, events, row, EventType.STAGE_STARTED, message, now)
        if not sent:  # an empty list to map over
            return self._join(session, events, row, numbering, now)
        return replace(dispatch, members=tuple(sent))

    def _members(
        self, session: Session, events: list[Event], operation_id: str, reports: Sequence[StepReport], now: datetime
    ) -> list[CheckpointResult]:
        """Record reports of the members of an operation's running stage, in one go under its row lock.

        A finished member's result is recorded once (a repeated report changes nothing), with one MEMBER_COMPLETED
        event for all recorded here. The last member's result joins the stage (`_join`: a compare-and-set under the
        row lock, whichever worker and replica reports it). A member that did not start (a stop flag) is sent again
        while the operation runs; under a requested pause or cancel it is left for Resume, and once no member is
        out the operation is PAUSED (or CANCELLED) within the stage; a Resume before that sends it again (`command`).
        Reports of another attempt, dispatch or step change nothing."""
        with self._locked(session, operation_id) as row:
            state, step = State(row.state), row.current_step
            numbering = self._numbering(session, operation_id)
            results: list[CheckpointResult] = []
            finished: list[int] = []
            again: list[int] = []
            for report in reports:
                member = report.member if report.member is not None else -1
                current = state in ACTIVE and report.step == step and numbering.is_stage(step)
                if not current or (report.attempt and report.attempt != row.attempt) or not 0 <= member < row.members_total:
                    results.append(CheckpointResult(Decision.STOP, state, row.attempt))
                    continue
                if not self.dispatched(row.step_secret, report.step_token):
                    results.append(CheckpointResult(Decision.STOP, state, row.attempt, refused=True))
                    continue
                key = {"operation_id": row.id, "step": step, "member": member, "ended_at": now}
                if report.next_not_started:
                    if state is State.RUNNING:
                        if report.next_dropped:  # dropped on a stale stop flag: send it again
                            again.append(member)
                        results.append(CheckpointResult(Decision.CONTINUE, state, row.attempt))
                        continue
                    kept = session.connection().execute(self._member_statements[1], {**key, "result_json": None, "seq": None})
                    if kept.rowcount:  # kept as dropped (no result): sent again by Resume
                        row.members_running = max(row.members_running - 1, 0)
                    stop = Decision.PAUSE if state is State.PAUSE_REQUESTED else Decision.CANCEL
                    results.append(CheckpointResult(stop, state, row.attempt))
                    continue
                values = {**key, "result_json": report.result_json, "seq": row.members_done + 1}
                if not session.connection().execute(self._member_statements[0], values).rowcount:  # a repeated report
                    results.append(CheckpointResult(Decision.STOP, state, row.attempt))
                else:
                    finished.append(member)
                    row.members_done += 1
                    row.members_running = max(row.members_running - 1, 0)
                    results.append(CheckpointResult(Decision.CONTINUE, state, row.attempt))
            dispatch = None
            joins = bool(finished) and row.members_done >= row.members_total
            if finished:
                row.lease_expires_at = now + self.lease
                self._announce(session, events, row, now, at_once=joins)
            counted = len(results) > sum(1 for result in results if result.decision is Decision.STOP)
            if joins:
                dispatch = self._join(session, events, row, numbering, now)
            elif counted and state in STOPPING and row.members_running == 0:
                paused = state is State.PAUSE_REQUESTED
                message = stages.stopped_message(
                    paused, numbering.number(step), numbering.count, row.members_done, row.members_total
                )
                stopped = State.PAUSED if paused else State.CANCELLED
                self._apply(session, events, row, states.Transition(stopped, EventType(stopped), message), now)
            elif state is State.RUNNING and (finished or again):
                dispatch = self._more_members(session, row, again)
            if dispatch is not None:
                outbox = self._enqueue(session, dispatch, now)
                results[-1] = replace(results[-1], resend=dispatch, outbox=outbox)
            if row.members_done > row.members_announced:
                results[-1] = replace(results[-1], unannounced=True)
            return results

    def _announce(self, session: Session, events: list[Event], row: WorkingRow, now: datetime, at_once: bool = True) -> None:
        """One MEMBER_COMPLETED naming the members recorded since the last one, in the order recorded: unless
        `at_once`, only when the last one is stages.ANNOUNCE_SECONDS old (the engine names the others a little later:
        announce_members). A stage's join and every stop name them at once, so each member is named once."""
        if row.members_done <= row.members_announced:
            return
        last = row.members_announced_at
        if not at_once and last is not None and (now - _aware(last)).total_seconds() < stages.ANNOUNCE_SECONDS:
            return
        step = row.current_step
        named = session.scalars(
            select(MEMBERS.c.member)
            .where(MEMBERS.c.operation_id == row.id, MEMBERS.c.step == step, MEMBERS.c.seq > row.members_announced)
            .order_by(MEMBERS.c.seq)
        ).all()
        numbering = self._numbering(session, row.id)
        message = stages.members_done_message(named, numbering.number(step), numbering.count, row.members_done, row.members_total)
        row.members_announced, row.members_announced_at = row.members_done, now
        self._append(session, events, row, EventType.MEMBER_COMPLETED, message, now)

    async def announce_members(self, operation_id: str) -> None:
        """Name in one event the members of the operation's running stage that were recorded since the last one."""
        now = datetime.now(UTC)

        def announce(session: Session, events: list[Event]) -> None:
            with self._locked(session, operation_id) as row:
                if row.members_total and State(row.state) in ACTIVE:
                    self._announce(session, events, row, now)

        # It reads stage_members: not deferrable (see PostgresWriter.submit).
        with contextlib.suppress(NotFound):
            await self.write(announce)

    def _more_members(self, session: Session, row: WorkingRow, again: list[int]) -> Dispatch | None:
        """The members to send now in a running stage: those dropped on a stale flag (`again`) or kept as dropped
        under a pause that a Resume withdrew, and the next ones without a result while fewer than max_parallel are
        out. Sent as the current dispatch (same attempt and step secret)."""
        plan, input_json = session.execute(
            select(OPERATIONS.c.plan, OPERATIONS.c.input_json).where(OPERATIONS.c.id == row.id)
        ).one()
        where = (MEMBERS.c.operation_id == row.id, MEMBERS.c.step == row.current_step)
        dropped = list(session.scalars(select(MEMBERS.c.member).where(*where, MEMBERS.c.result_json.is_(None))))
        if dropped:
            session.execute(delete(MEMBERS).where(*where, MEMBERS.c.result_json.is_(None)))
            row.members_running += len(dropped)
            again = again + dropped
        parallel = stages.max_parallel(plan[row.current_step][stages.STAGE])
        room = parallel - row.members_running if parallel else 0
        more: list[int] = []
        if room > 0 and row.members_next < row.members_total:
            done = set(
                session.scalars(
                    select(MEMBERS.c.member).where(
                        MEMBERS.c.operation_id == row.id, MEMBERS.c.step == row.current_step, MEMBERS.c.member >= row.members_next
                    )
                )
            )
            member = row.members_next
            while len(more) < room and member < row.members_total:
                if member not in done:
                    more.append(member)
                member += 1
            row.members_next = member
            row.members_running += len(more)
        if not again and not more:
            return None
        dispatch = dispatch_from(
            row.id, plan, row.current_step, input_json, row.result_json, row.attempt, row.step_secret or "", None
        )
        return replace(dispatch, members=tuple(again + more))

    def _join(
        self, session: Session, events: list[Event], row: WorkingRow, numbering: states.Numbering, now: datetime
    ) -> Dispatch | None:
        """Every member of the stage at the row's current step has its result: the stage's result is their list, in
        member order; the operation goes on (the rest of the plan is returned to dispatch), pauses, is cancelled or
        succeeds, as at any step boundary (states.checkpoint)."""
        step = row.current_step
        where = (MEMBERS.c.operation_id == row.id, MEMBERS.c.step == step)
        results = session.scalars(select(MEMBERS.c.result_json).where(*where).order_by(MEMBERS.c.member)).all()
        total = row.members_total
        joined = stages.joined([result for result in results if result is not None])
        if len(joined.encode()) > limits.current.max_result_bytes:
            row.error = {
                "code": limits.RESULT_TOO_LARGE, "step": step, "step_name": numbering.name(step),
                "step_number": numbering.number(step),
                "message": f"the stage's result, the list of its {total} members' results, is {len(joined.encode())} bytes "
                f"of JSON; the limit is {limits.current.max_result_bytes} (setting max_result_bytes): make the members "
                "return references to large data (a path, a key) instead",
            }  # fmt: skip
            message = f"{limits.RESULT_TOO_LARGE}: {row.error['message']}"
            self._apply(session, events, row, states.Transition(State.FAILED, EventType.FAILED, message), now)
            return None
        session.execute(delete(MEMBERS).where(*where))
        row.result_json = joined
        self._record_step(session, row, "result", numbering, row.result_json, now, row.step_started_at, step)
        row.members_total = row.members_done = row.members_running = row.members_next = row.members_announced = 0
        row.members_announced_at = None
        pause_at = numbering.boundary_before(row.pause_before_step) if row.pause_before_step else -1
        outcome = states.checkpoint(State(row.state), step, step, row.total_steps, numbering=numbering, pause_at=pause_at)
        row.step_started_at = now
        _move(row, step + 1, numbering)
        row.progress, row.progress_message = 0.0, ""
        row.lease_expires_at = now + self.lease
        message = f"stage {numbering.done(step)}/{numbering.count} done: {total} member{'s' if total != 1 else ''}"
        self._append(session, events, row, EventType.STAGE_COMPLETED, message, now)
        if outcome.transition.event is not EventType.STEP_COMPLETED:
            self._apply(session, events, row, outcome.transition, now)
        if outcome.decision is Decision.CONTINUE and State(row.state) is State.RUNNING:
            return self._dispatch_of(session, row, None, events, now)
        return None

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

    def _step_secrets(self, session: Session, operation_ids: set[str]) -> dict[str, str | None]:
        """The step secrets of these operations (those that exist): from the SQLite row cache, else read in batches."""
        found: dict[str, str | None] = {}
        missing = []
        for operation_id in operation_ids:
            cached = self.sqlite.rows.get(operation_id) if self.sqlite is not None else None
            if cached is not None:
                found[operation_id] = cached["step_secret"]
            else:
                missing.append(operation_id)
        for start in range(0, len(missing), SECRET_BATCH):
            batch = missing[start : start + SECRET_BATCH]
            rows = session.connection().execute(
                select(OPERATIONS.c.id, OPERATIONS.c.step_secret).where(OPERATIONS.c.id.in_(batch))
            )
            found.update({row.id: row.step_secret for row in rows})
        return found

    def _execute(self, session: Session, statement: Any, params: dict[str, Any]) -> None:
        """A one-row write statement: on the SQLite writer's own connection, else through the session."""
        if self.sqlite is not None:
            self.sqlite.execute(statement, params)
        else:
            session.connection().execute(statement, params)

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


def _move(row: WorkingRow, index: int, numbering: states.Numbering) -> None:
    """The operation is now at plan entry `index`: the user's step there (or the next one) and its name."""
    row.current_step = index
    row.current_step_name = numbering.name(index)
    row.step_number = numbering.number(index)


@dataclass(frozen=True)
class NewInput:
    """A value that replaces what a step receives (Resume with input), as JSON text, and how to check it against the
    step's input schema (`check(step_number, step_name, schema)` raises InvalidArgument)."""

    text: str
    check: Callable[[int, str, dict[str, Any] | None], None]


@dataclass(frozen=True)
class Fork:
    """Where a forked operation starts: plan index `start` (the user's step `from_step`), fed `result_json` (None:
    from step 1, fed the operation's input), and its parent."""

    parent_id: str
    from_step: int
    start: int
    result_json: str | None
    reason: str = ""


class _RequestSeen(Exception):
    """Another call with this request_id committed first (found inside the write transaction)."""


def member_statements(postgres: bool) -> tuple[Any, Any]:
    """Record a member's result unless it has one (rowcount 0: it had), and keep a member that dropped itself unless
    it is known (rowcount 0): one statement each, the member's row found by its primary key."""
    insert = postgresql_insert if postgres else sqlite_insert
    record = insert(MEMBERS)
    record = record.on_conflict_do_update(
        index_elements=[MEMBERS.c.operation_id, MEMBERS.c.step, MEMBERS.c.member],
        set_={"result_json": record.excluded.result_json, "ended_at": record.excluded.ended_at, "seq": record.excluded.seq},
        where=MEMBERS.c.result_json.is_(None),
    )
    return record, insert(MEMBERS).on_conflict_do_nothing()


def new_step_secret() -> str:
    """A dispatch's secret (operations.step_secret, the pausable_step_token header of its steps): 256 random bits."""
    return secrets.token_urlsafe(32)


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


def bulk_of(row: Any) -> BulkAction:
    """A bulk action from its row (a Core row, or the values just inserted)."""
    return BulkAction(
        id=row.id,
        kind=row.kind,
        state=row.state,
        matched=row.matched,
        done=row.done,
        skipped=row.skipped,
        failed=row.failed,
        skipped_reasons=dict(row.skipped_reasons or {}),
        failures=list(row.failures or []),
        reason=row.reason,
        actor=row.actor,
        requester=row.requester,
        create_time=epoch(row.created_at),
        update_time=epoch(row.updated_at),
        end_time=epoch(row.ended_at),
    )


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
