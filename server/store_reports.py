"""Writes of workers' reports: checkpoints (a step's result), progress, failures, saved details.

A report changes the operation only when it carries the current dispatch's
step token (`dispatched`); a report of another attempt or dispatch changes
nothing. Reports of a stage's members go to store_stages.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pausable.server import states
from pausable.server.domain import UNPARSED, CheckpointResult, Event, NotDispatched, NotFound, StepReport
from pausable.server.parsed import results as parsed_results
from pausable.server.states import ACTIVE, Decision, EventType, State
from pausable.server.store_core import OPERATIONS, StoreCore, _move


class ReportWrites(StoreCore):
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
            # The chain ended before a stage (dispatch.messages): the daemon sends its members.
            staged = outcome.decision is Decision.CONTINUE and outcome.record_result and numbering.is_stage(row.current_step)
            if not (resend or staged):
                return CheckpointResult(outcome.decision, State(row.state), row.attempt, ask=ask)
            # Or the worker dropped the next step on a stale stop flag: send it again, as the same attempt.
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
