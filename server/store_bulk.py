"""Writes of bulk actions (bulk.py): one command on many operations, a batch per transaction, resumable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pausable.server import bulk, states
from pausable.server.domain import BulkAction, Event, NotFound, new_operation_id
from pausable.server.errors import InvalidArgument
from pausable.server.event_rows import epoch
from pausable.server.models import OperationRow
from pausable.server.reads import filtered
from pausable.server.states import Command, State
from pausable.server.store_core import BULK, Change, StoreCore, WorkingRow, _aware


class BulkWrites(StoreCore):
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
