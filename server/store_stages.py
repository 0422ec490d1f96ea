"""Writes of stages (stages.py): a step that runs as many members at once, joined when all of them are done.

Entering a stage sends its members (at most max_parallel), each with a lease
of its own (`_send_members`); each member's result is recorded once
(`_members`, one upsert: `member_statements`); the last one joins the stage
(`_join`) and the operation goes on. Recorded members are named in
MEMBER_COMPLETED events (`_announce`, `announce_members`); members whose lease
lapsed are sent again (`lapsed_members`, `members_lost`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, null, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from pausable.server import limits, stages, states
from pausable.server.domain import CheckpointResult, Dispatch, Event, NotFound, StepReport
from pausable.server.states import ACTIVE, Decision, EventType, State
from pausable.server.store_core import MEMBERS, OPERATIONS, Change, StoreCore, WorkingRow, _aware, _move, dispatch_from

STOPPING = (State.PAUSE_REQUESTED, State.CANCEL_REQUESTED)


class StageWrites(StoreCore):
    def __init__(self, engine: AsyncEngine, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> None:
        super().__init__(engine, on_commit, replica)
        self._member_statements = member_statements(self.postgres)

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
        self._send_members(session, row.id, step, sent, now)
        return replace(dispatch, members=tuple(sent))

    def _send_members(self, session: Session, operation_id: str, step: int, members: Sequence[int], now: datetime) -> None:
        """These members go out now: each holds a lease until a worker's heartbeat renews it (`members_lost`)."""
        if members:
            values = [
                {"operation_id": operation_id, "step": step, "member": member, "result_json": None, "ended_at": now,
                 "seq": None, "lease_expires_at": now + self.lease}
                for member in members
            ]  # fmt: skip
            self._execute_many(session, self._member_statements.send, values)

    def _members(
        self, session: Session, events: list[Event], operation_id: str, reports: Sequence[StepReport], now: datetime
    ) -> list[CheckpointResult]:
        """Record reports of the members of an operation's running stage, in one go under its row lock.

        A finished member's result is recorded once (a repeated report changes nothing) and named in a MEMBER_COMPLETED
        event (`_announce`: at most one per stages.ANNOUNCE_SECONDS). The last member's result joins the stage (`_join`: a compare-and-set under the
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
                    kept = self._execute(
                        session, self._member_statements.drop, {**key, "result_json": None, "seq": None, "lease_expires_at": None}
                    )
                    if kept:  # kept as dropped (no result): sent again by Resume
                        row.members_running = max(row.members_running - 1, 0)
                    stop = Decision.PAUSE if state is State.PAUSE_REQUESTED else Decision.CANCEL
                    results.append(CheckpointResult(stop, state, row.attempt))
                    continue
                values = {**key, "result_json": report.result_json, "seq": row.members_done + 1, "lease_expires_at": None}
                if not self._execute(session, self._member_statements.record, values):  # a repeated report
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

    async def lapsed_members(self, limit: int = 100) -> list[str]:
        """Operations with a sent member whose lease lapsed (no worker's heartbeat renewed it), oldest lapse first."""
        query = (
            select(MEMBERS.c.operation_id)
            .where(MEMBERS.c.lease_expires_at < datetime.now(UTC))
            .order_by(MEMBERS.c.lease_expires_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list(dict.fromkeys((await session.scalars(query)).all()))

    async def extend_member_leases(self, operation_ids: Sequence[str]) -> None:
        """Messages of these operations wait on the broker: their members whose lease lapsed are not lost (yet)."""
        now = datetime.now(UTC)
        statement = (
            update(MEMBERS)
            .where(MEMBERS.c.operation_id.in_(operation_ids), MEMBERS.c.lease_expires_at < now)
            .values(lease_expires_at=now + self.lease)
        )

        def extend(session: Session, _events: list[Event]) -> None:
            session.execute(statement)

        await self.write(extend)

    async def members_lost(self, operation_id: str, reason: str) -> Change | None:
        """Settle the members of the operation's running stage whose lease lapsed (their worker died, or their message
        was lost) while others keep the step's lease alive: sent again as the same dispatch (STEP_RETRIED names them),
        or, once one was sent max_attempts times, the operation FAILS with WORKER_LOST; under a requested pause or
        cancel they count as dropped (Resume sends them). Leases of members of a stage the operation left are dropped."""
        now = datetime.now(UTC)

        def settle(session: Session, events: list[Event]) -> Change | None:
            with self._locked(session, operation_id, with_input=True) as row:
                state, step = State(row.state), row.current_step
                numbering = self._numbering(session, row.id)
                lapsed = (MEMBERS.c.operation_id == row.id, MEMBERS.c.lease_expires_at < now)
                current = state in ACTIVE and numbering.is_stage(step)
                stale = lapsed if not current else (*lapsed, MEMBERS.c.step != step)
                session.execute(update(MEMBERS).where(*stale).values(lease_expires_at=None))
                lost = session.execute(select(MEMBERS.c.member, MEMBERS.c.sends).where(*lapsed, MEMBERS.c.step == step)).all()
                if not current or not lost:
                    return None
                members = sorted(member for member, _sends in lost)
                where = f"{stages.named(members)} of stage {numbering.number(step)}/{numbering.count}"
                number, count = numbering.number(step), numbering.count
                if state in STOPPING:  # dropped: Resume sends them
                    session.execute(update(MEMBERS).where(*lapsed, MEMBERS.c.step == step).values(lease_expires_at=None))
                    row.members_running = max(row.members_running - len(members), 0)
                    if row.members_running == 0:
                        paused = state is State.PAUSE_REQUESTED
                        stopped = State.PAUSED if paused else State.CANCELLED
                        message = stages.stopped_message(paused, number, count, row.members_done, row.members_total)
                        self._apply(session, events, row, states.Transition(stopped, EventType(stopped), message), now)
                    return Change(self._operation(row))
                if max(sends for _member, sends in lost) >= row.max_attempts:
                    row.error = {
                        "code": "WORKER_LOST", "message": f"{reason}; {where} was sent {row.max_attempts} times",
                        "step": step, "step_name": numbering.name(step), "step_number": number, "member_index": members[0],
                    }  # fmt: skip
                    self._apply(
                        session, events, row, states.Transition(State.FAILED, EventType.FAILED, f"WORKER_LOST: {reason}"), now
                    )
                    return Change(self._operation(row))
                session.execute(
                    update(MEMBERS)
                    .where(*lapsed, MEMBERS.c.step == step)
                    .values(lease_expires_at=now + self.lease, sends=MEMBERS.c.sends + 1)
                )
                row.lease_expires_at = now + self.lease
                self._append(session, events, row, EventType.STEP_RETRIED, f"{where} lost ({reason}): sent again", now)
                dispatch = members_of(row, row.__dict__["plan"], row.__dict__["input_json"], members)
                return Change(self._operation(row), dispatch, outbox=self._enqueue(session, dispatch, now))

        # It reads and writes stage_members: not deferrable (see PostgresWriter.submit).
        return await self.write(settle)

    def _more_members(self, session: Session, row: WorkingRow, again: list[int]) -> Dispatch | None:
        """The members to send now in a running stage: those dropped on a stale flag (`again`) or kept as dropped
        under a pause that a Resume withdrew, and the next ones without a result while fewer than max_parallel are
        out. Sent as the current dispatch (same attempt and step secret).

        Once every member was sent, each is recorded, out or dropped, so when the counters leave no room for a dropped
        one there is nothing to read. `members_running` never counts more members than are out (a lapsed member that
        reports late is taken off twice, down to 0), so a dropped member is never missed this way."""
        if not again and row.members_next >= row.members_total and row.members_done + row.members_running >= row.members_total:
            return None
        plan, input_json = session.execute(
            select(OPERATIONS.c.plan, OPERATIONS.c.input_json).where(OPERATIONS.c.id == row.id)
        ).one()
        where = (MEMBERS.c.operation_id == row.id, MEMBERS.c.step == row.current_step)
        dropped = list(
            session.scalars(
                select(MEMBERS.c.member).where(*where, MEMBERS.c.result_json.is_(None), MEMBERS.c.lease_expires_at.is_(None))
            )
        )
        row.members_running += len(dropped)
        again = again + dropped
        parallel = stages.max_parallel(plan[row.current_step][stages.STAGE])
        room = parallel - row.members_running if parallel else 0
        more: list[int] = []
        if room > 0 and row.members_next < row.members_total:
            done = set(
                session.scalars(
                    select(MEMBERS.c.member).where(
                        *where, MEMBERS.c.member >= row.members_next, MEMBERS.c.result_json.is_not(None)
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
        self._send_members(session, row.id, row.current_step, again + more, datetime.now(UTC))
        return members_of(row, plan, input_json, again + more)

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


def members_of(row: WorkingRow, plan: Sequence[dict[str, Any]], input_json: str, members: Sequence[int]) -> Dispatch:
    """These members of the operation's running stage, as its current dispatch (same attempt and step secret)."""
    dispatch = dispatch_from(
        row.id, plan, row.current_step, input_json, row.result_json, row.attempt, row.step_secret or "", None
    )
    return replace(dispatch, members=tuple(members))


class MemberStatements(NamedTuple):
    """One statement each, the member's row found by its primary key (stage_members)."""

    record: Any  # its result, unless it has one (rowcount 0: a repeated report)
    drop: Any  # it dropped itself: no lease, to send again (rowcount 0: known already, or finished)
    send: Any  # it goes out: a lease (unless it has a result)


def member_statements(postgres: bool) -> MemberStatements:
    insert = postgresql_insert if postgres else sqlite_insert
    key = [MEMBERS.c.operation_id, MEMBERS.c.step, MEMBERS.c.member]
    record = insert(MEMBERS)
    record = record.on_conflict_do_update(
        index_elements=key,
        set_={
            "result_json": record.excluded.result_json, "ended_at": record.excluded.ended_at, "seq": record.excluded.seq,
            "lease_expires_at": null(),
        },
        where=MEMBERS.c.result_json.is_(None),
    )  # fmt: skip
    drop = insert(MEMBERS)
    drop = drop.on_conflict_do_update(
        index_elements=key,
        set_={"lease_expires_at": null(), "ended_at": drop.excluded.ended_at},
        where=MEMBERS.c.result_json.is_(None) & MEMBERS.c.lease_expires_at.is_not(None),
    )
    send = insert(MEMBERS)
    send = send.on_conflict_do_update(
        index_elements=key,
        set_={"lease_expires_at": send.excluded.lease_expires_at, "ended_at": send.excluded.ended_at},
        where=MEMBERS.c.result_json.is_(None),
    )
    return MemberStatements(record, drop, send)
