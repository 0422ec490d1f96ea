"""The SQLite writer's fast path (prepared statements on the raw connection, the active-row cache) against a real store file."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

from pausable.server.dispatch import plan_for
from pausable.server.domain import StepReport, Workflow
from pausable.server.prepared import PreparedStatements
from pausable.server.states import Decision
from pausable.server.store import EVENTS, OUTBOX, Store


def test_prepared_statements_write_the_same_bytes_as_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "store.db"

    async def migrate() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{path}")
        await store.close()

    asyncio.run(migrate())
    store_file = sqlite3.connect(path, isolation_level=None)
    store_file.execute("PRAGMA foreign_keys=OFF")
    values = {
        "operation_id": "a" * 32,
        "seq": 1,
        "type": "CREATED",
        "message": "é",
        "state": "PENDING",
        "snapshot": {"n": 1.5, "s": "é"},
    }
    now = datetime(2026, 11, 26, 19, 0, 0, 123456, tzinfo=UTC)
    later = datetime(2026, 11, 26, 19, 0, 1, tzinfo=UTC)
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(insert(EVENTS), {**values, "created_at": now})
        connection.execute(insert(EVENTS), {**values, "seq": 3, "created_at": later})
    prepared = PreparedStatements(engine.dialect)
    prepared.execute(store_file, insert(EVENTS), {**values, "seq": 2, "created_at": now})
    # The DATETIME converters share their last value and text: another statement's column, then another time.
    prepared.execute(store_file, insert(OUTBOX), {"operation_id": "a" * 32, "attempt": 1, "step": 0, "created_at": now})
    prepared.execute(store_file, insert(EVENTS), {**values, "seq": 4, "created_at": later})
    rows = store_file.execute("SELECT type, message, state, snapshot, created_at, tx FROM events ORDER BY seq").fetchall()
    assert rows[0] == rows[1] and rows[2] == rows[3] and rows[0][4] != rows[2][4]
    assert store_file.execute("SELECT created_at FROM outbox").fetchone()[0] == rows[0][4]
    engine.dispose()


async def start_four_steps(store: Store) -> tuple[str, str]:
    """An operation of a 4-step workflow, RUNNING at step 0: its id and its step token."""
    await store.register_workflows([Workflow("w", plan_for(["a", "b", "c", "d"]))], "test")
    workflow = await store.get_workflow("w")
    assert workflow is not None
    change = await store.create_operation(workflow, input_json="0", request_id="", requester="", labels={})
    assert change.dispatch is not None
    return change.operation.id, change.dispatch.step_token


@pytest.mark.parametrize("fails", ["inside the write", "a later report"])
def test_a_failed_write_leaves_neither_the_store_nor_the_row_cache_changed(tmp_path: Path, fails: str) -> None:
    async def scenario() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            operation_id, token = await start_four_steps(store)
            [first] = await store.checkpoints([StepReport(operation_id, 0, "1", continued=True, step_token=token)])
            assert first is not None and first.decision is Decision.CONTINUE

            def broken(session, events):
                store._checkpoint(
                    session, events, StepReport(operation_id, 1, "2", continued=True, step_token=token), datetime.now(UTC)
                )
                if fails == "inside the write":
                    raise RuntimeError("boom")
                with store._locked(session, "f" * 32):
                    pass

            with pytest.raises(Exception):  # noqa: B017 - RuntimeError or NotFound
                await store.write(broken)
            assert (await store.get_operation(operation_id)).current_step == 1
            [again] = await store.checkpoints([StepReport(operation_id, 1, "2", continued=True, step_token=token)])
            assert again is not None and again.decision is Decision.CONTINUE
            operation = await store.get_operation(operation_id)
            assert operation.current_step == 2 and operation.result == 2
            assert [event.seq for event in await store.events_after(operation_id, 0)] == [1, 2, 3, 4]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_steps_skipped_by_a_report_get_their_step_completed_and_a_late_report_changes_nothing(tmp_path: Path) -> None:
    """A report may overtake the reports of earlier steps sent by another worker process."""

    async def scenario() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            operation_id, token = await start_four_steps(store)
            [ahead] = await store.checkpoints([StepReport(operation_id, 2, "3", continued=True, step_token=token)])
            [late] = await store.checkpoints([StepReport(operation_id, 0, "1", continued=True, step_token=token)])
            assert ahead is not None and ahead.decision is Decision.CONTINUE
            assert late is not None and late.decision is Decision.STOP
            events = await store.events_after(operation_id, 0)
            assert [(event.type, event.message, event.operation.current_step) for event in events[2:]] == [
                ("STEP_COMPLETED", "step 1/4 done", 1),
                ("STEP_COMPLETED", "step 2/4 done", 2),
                ("STEP_COMPLETED", "step 3/4 done", 3),
            ]
            assert (await store.get_operation(operation_id)).result == 3
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_datetime_converter_formats_each_recent_time_once() -> None:
    from pausable.server.prepared import _recent

    calls: list[datetime | None] = []

    def convert(value: datetime | None) -> str | None:
        calls.append(value)
        return None if value is None else value.isoformat()

    shared: dict[int, tuple[Any, Any]] = {}
    updated_at, lease_expires_at = _recent(convert, shared), _recent(convert, shared)  # two columns of one format
    now = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
    lease = now + timedelta(seconds=60)
    texts = [updated_at(now), lease_expires_at(lease), updated_at(None), lease_expires_at(now), updated_at(lease)]
    assert texts == [now.isoformat(), lease.isoformat(), None, now.isoformat(), lease.isoformat()]
    assert calls == [now, lease, None]
    equal = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # equal but another object: formatted (equal times in other zones differ)
    assert updated_at(equal) == now.isoformat() and calls[-1] is equal
