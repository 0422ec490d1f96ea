"""Writes that keep operations going when processes die or time passes: leases, the outbox, timers, retention.

Leases: live workers renew them (`renew_leases`); the engine's sweep settles
an operation whose lease lapsed (`lease_lapsed`: retry the step, fail it, or
end its stop). The outbox: dispatches written with their transaction, deleted
once published (`sent`, `sent_soon`), sent again by the sweep if not
(`unsent`). Timers (timers.py): deadlines and pause timeouts. Retention:
`purge` and `delete_finished`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from pausable.server import states, timers
from pausable.server.domain import Dispatch, Event, HeldStep, NotFound
from pausable.server.models import OperationRow
from pausable.server.states import ACTIVE, EventType, LeaseVerdict, State
from pausable.server.store_core import (
    DELETE_OUTBOX,
    DELETE_OUTBOX_LISTED,
    MEMBERS,
    OPERATIONS,
    OUTBOX,
    Change,
    LeaseOutcome,
    OutboxId,
    StoreCore,
    _aware,
    delete_operations,
    dispatch_from,
)

SECRET_BATCH = 500
RENEW_MEMBER = update(MEMBERS).where(
    MEMBERS.c.operation_id == bindparam("held_id"),
    MEMBERS.c.step == bindparam("held_step"),
    MEMBERS.c.member == bindparam("held_member"),
    MEMBERS.c.result_json.is_(None),
    MEMBERS.c.lease_expires_at.is_not(None),
)  # operation ids per query when RenewLeases reads step secrets


class DurabilityWrites(StoreCore):
    def __init__(self, engine: AsyncEngine, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> None:
        super().__init__(engine, on_commit, replica)
        self._sent: list[OutboxId] = []  # outbox entries published, to delete in the SQLite writer's next transaction
        self._sent_lock = threading.Lock()
        if self.sqlite is not None:
            self.sqlite.first = self._delete_sent

    # -- leases ---------------------------------------------------------------

    async def renew_leases(self, held: Sequence[HeldStep]) -> int:
        """Steps (operation, step, attempt, step token, stage member) a live worker holds: their leases run on from now,
        a stage member's own too.

        Only steps whose token is the current dispatch's; returns how many steps matched.
        """
        if not held:
            return 0
        held = [HeldStep(*entry) for entry in held]
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
            secrets_of = self._step_secrets(session, {entry.operation_id for entry in held})
            valid = [
                entry
                for entry in held
                if entry.operation_id in secrets_of and self.dispatched(secrets_of[entry.operation_id], entry.step_token)
            ]
            dispatched = sorted({(e.operation_id, e.step, e.attempt, secrets_of[e.operation_id]) for e in valid})
            if not dispatched:
                return 0
            params = [
                {"held_id": op, "held_step": step, "held_attempt": attempt, "held_secret": secret}
                for op, step, attempt, secret in dispatched
            ]
            result = session.connection().execute(statement, params)
            # After the operations' rows, as every other write locks them first (Postgres: no deadlock between replicas).
            members = sorted({(e.operation_id, e.step, e.member) for e in valid if e.member is not None})
            if members:
                session.connection().execute(
                    RENEW_MEMBER.values(lease_expires_at=until),
                    [{"held_id": op, "held_step": step, "held_member": member} for op, step, member in members],
                )
            if self.sqlite is not None:
                for op, _step, _attempt, _secret in dispatched:
                    cached = self.sqlite.rows.get(op)
                    if cached is not None and _attempt in (0, cached["attempt"]) and cached["current_step"] == _step:
                        cached["lease_expires_at"] = until
            return int(result.rowcount or 0)

        return await self.write(renew)

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

    async def lapsed(self, limit: int = 100) -> list[str]:
        """Active operations whose lease has lapsed, oldest lapse first.

        The state is tested inside an expression (coalesce) so that no index on it is used: SQLite chose
        ix_operations_state_id and read every RUNNING operation on each sweep (150 ms for 36,000 of them, every
        2.5 s, in bench/paired_rates.py); ix_operations_lease_expires_at reads only the lapsed ones.
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

    # -- the outbox -----------------------------------------------------------

    async def sent(self, outbox_ids: Sequence[int]) -> None:
        """These outbox entries reached the broker."""
        if not outbox_ids:
            return

        rows = [{"outbox_id": outbox_id} for outbox_id in outbox_ids]

        def forget(session: Session, _events: list[Event]) -> None:
            self._execute_many(session, DELETE_OUTBOX, rows)

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
        """(The SQLite writer's `first`.) One statement for them all (an executemany runs one per entry, each a
        trip into SQLite that gives up the GIL and takes it back). Lost on a failed transaction: the sweep publishes
        those entries again, which is harmless."""
        assert self.sqlite is not None
        with self._sent_lock:
            if not self._sent:
                return
            sent, self._sent = self._sent, []
        self.sqlite.execute(DELETE_OUTBOX_LISTED, {"outbox_ids": json.dumps(sent)})

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

    # -- retention ------------------------------------------------------------

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
