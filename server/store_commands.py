"""Writes that clients ask for: registering workflows, starting operations (and forks), commands on them.

`create_operation` inserts an operation, RUNNING, with its first dispatch in
the outbox (a request_id repeats nothing); `command` applies pause, resume,
cancel and retry as one compare-and-set, breakpoints (Pause before a step),
a new input on Resume and a pause's timeout included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pausable.server import stages, states, timers
from pausable.server.domain import UNPARSED, AlreadyExists, Dispatch, Event, Operation, Workflow, new_operation_id
from pausable.server.errors import InvalidArgument
from pausable.server.models import WorkflowRow
from pausable.server.parsed import inputs as parsed_inputs
from pausable.server.parsed import results as parsed_results
from pausable.server.states import Command, EventType, State
from pausable.server.store_core import (
    INSERT_LABEL,
    INSERT_OPERATION,
    OPERATIONS,
    REQUESTS,
    Change,
    StoreCore,
    WorkingRow,
    new_step_secret,
)


class CommandWrites(StoreCore):
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
            numbering = workflow.numbering
            operation_id = new_operation_id()
            start = fork.start if fork is not None else 0
            values = {
                "id": operation_id,
                "workflow": workflow.name,
                "state": State.PENDING,
                "current_step": start,
                "current_step_name": numbering.name(start),
                "total_steps": len(workflow.plan),
                "step_number": numbering.number(start),
                "step_count": numbering.count,
                "step_names": workflow.stored_steps,
                "progress": 0.0,
                "progress_message": "",
                "input_json": input_json,
                "result_json": fork.result_json if fork is not None else None,
                "plan": workflow.stored_plan,
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
                self._execute_many(
                    session, INSERT_LABEL, [{"operation_id": values["id"], "key": k, "value": v} for k, v in labels.items()]
                )
            if members is not None:
                self._send_members(session, operation_id, start, members[0], now)
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
                row.id, workflow.stored_plan, start, argument, 1, headers or {}, row.step_secret or "", members and members[0]
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
