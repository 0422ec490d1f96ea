"""The Postgres writer's group commit: writes submitted together share one transaction, each in its own SAVEPOINT."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from support.servers import PostgresServer

from pausable.server.dispatch import plan_for
from pausable.server.domain import Event, StepReport, Workflow
from pausable.server.postgres import COMMITTING, PostgresWriter
from pausable.server.states import Command, Decision, State
from pausable.server.store import INSERT_EVENT, Store

pytestmark = pytest.mark.integration


class Batches(NamedTuple):
    writes: list[asyncio.Task[Any]]
    sizes: list[int]  # of each batch the writer ran, in order


async def in_one_batch(writer: PostgresWriter, *writes: Coroutine[Any, Any, Any]) -> Batches:
    """Start the writes while the writer cannot take a batch (its commit slots are held), release it once all of them
    are queued: they then go in one batch whatever awaits each does before it submits."""
    sizes: list[int] = []
    apply = writer._apply

    def counted(session: Session, batch: Sequence[Any]) -> list[Any]:
        sizes.append(len(batch))
        return apply(session, batch)

    writer._apply = counted  # type: ignore[method-assign]
    for _ in range(COMMITTING):
        await writer._slots.acquire()
    tasks = [asyncio.ensure_future(write) for write in writes]
    async with asyncio.timeout(10):
        while len(writer._queue) < len(writes):
            await asyncio.sleep(0.001)
    for _ in range(COMMITTING):
        writer._slots.release()
    return Batches(tasks, sizes)


def test_one_failing_write_in_a_batch_fails_only_its_own_caller(postgres: PostgresServer) -> None:
    url = postgres.create_database("group_commit")

    async def scenario() -> None:
        published: list[Event] = []
        store = await Store.open(url, published.extend)
        try:
            await store.register_workflows([Workflow("w", plan_for(["a", "b"]))], "test")
            workflow = await store.get_workflow("w")
            assert workflow is not None
            change = await store.create_operation(workflow, input_json="0", request_id="", requester="", labels={})
            operation_id, token = change.operation.id, change.dispatch.step_token if change.dispatch else ""
            published.clear()

            def raises(session: Session, events: list[Any]) -> None:
                store._checkpoint(session, events, StepReport(operation_id, 0, "9", step_token=token), datetime.now(UTC))
                raise RuntimeError("boom")

            def duplicate(session: Session, _events: list[Any]) -> None:
                values = {"operation_id": operation_id, "seq": 1, "type": "CREATED", "message": "", "state": "RUNNING"}
                session.connection().execute(INSERT_EVENT, {**values, "snapshot": {}, "created_at": datetime.now(UTC)})

            report = StepReport(operation_id, 0, "1", continued=True, step_token=token)
            batches = await in_one_batch(
                store.postgres_writer, store.write(raises), store.checkpoints([report]), store.write(duplicate)
            )
            outcomes = await asyncio.gather(*batches.writes, return_exceptions=True)
            assert batches.sizes == [3]
            assert isinstance(outcomes[0], RuntimeError) and isinstance(outcomes[2], IntegrityError)
            [recorded] = outcomes[1]  # type: ignore[misc]
            assert recorded is not None and recorded.decision is Decision.CONTINUE
            operation = await store.get_operation(operation_id)
            assert operation.current_step == 1 and operation.result == 1
            assert [event.seq for event in await store.events_after(operation_id, 0)] == [1, 2, 3]
            assert [event.seq for event in published] == [3]  # only the committed write's events
        finally:
            await store.close()

    asyncio.run(scenario())


def test_writes_of_one_operation_in_one_batch_build_on_each_other(postgres: PostgresServer) -> None:
    """Deferred UPDATEs and event INSERTs: a later write of the batch starts from the row as the earlier one left it."""
    url = postgres.create_database("group_commit_same_row")

    async def scenario() -> None:
        published: list[Event] = []
        store = await Store.open(url, published.extend)
        try:
            await store.register_workflows([Workflow("w", plan_for(["a", "b", "c", "d"]))], "test")
            workflow = await store.get_workflow("w")
            assert workflow is not None
            change = await store.create_operation(workflow, input_json="0", request_id="", requester="", labels={})
            operation_id, token = change.operation.id, change.dispatch.step_token if change.dispatch else ""
            published.clear()
            first, second, paused = await asyncio.gather(
                store.checkpoints([StepReport(operation_id, 0, "1", continued=True, step_token=token)]),
                store.checkpoints([StepReport(operation_id, 1, "2", continued=True, step_token=token)]),
                store.command(operation_id, Command.PAUSE),
            )
            assert [outcome.decision for outcome in first + second if outcome] == [Decision.CONTINUE] * 2
            assert paused.operation.state is State.PAUSE_REQUESTED and paused.operation.input_json == "0"
            operation = await store.get_operation(operation_id)
            assert (operation.current_step, operation.result, operation.state) == (2, 2, State.PAUSE_REQUESTED)
            assert [event.seq for event in await store.events_after(operation_id, 0)] == [1, 2, 3, 4, 5]
            assert [event.seq for event in published] == [3, 4, 5]
        finally:
            await store.close()

    asyncio.run(scenario())
