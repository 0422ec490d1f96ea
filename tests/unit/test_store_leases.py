"""Attempts, leases and the outbox in the store (a SQLite file; no server process)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pausable.server.dispatch import plan_for
from pausable.server.domain import StepReport, Workflow
from pausable.server.states import Command, Decision, EventType, LeaseVerdict, State
from pausable.server.store import Store


def run(tmp_path: Path, scenario: Callable[[Store, str, str], Awaitable[None]], max_attempts: int = 3) -> None:
    async def main() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            await store.register_workflows([Workflow("w", plan_for(["a", "b", "c"]), max_attempts=max_attempts)], "test")
            workflow = await store.get_workflow("w")
            assert workflow is not None
            store.lease = timedelta(0)  # every lease has already lapsed when it is written
            change = await store.create_operation(workflow, input_json="0", request_id="", requester="", labels={})
            assert change.outbox is not None and change.dispatch is not None and change.dispatch.attempt == 1
            await store.sent([change.outbox])
            assert change.dispatch is not None and change.dispatch.step_token
            await scenario(store, change.operation.id, change.dispatch.step_token)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_lapsed_step_runs_again_with_the_next_attempt_and_the_old_one_is_refused(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        [moved] = await store.checkpoints([StepReport(operation_id, 0, "1", continued=True, attempt=1, step_token=token)])
        assert moved is not None and moved.decision is Decision.CONTINUE
        assert await store.lapsed() == [operation_id]
        outcome = await store.lease_lapsed(operation_id, "worker lost")
        assert outcome is not None and outcome.verdict is LeaseVerdict.RETRY and outcome.operation.attempt == 2
        assert outcome.outbox is not None and outcome.dispatch is not None
        assert (outcome.dispatch.start, outcome.dispatch.argument) == (1, 1), "step b again, fed step a's result"
        assert outcome.dispatch is not None and outcome.dispatch.step_token not in ("", token), "a retry: a new secret"
        [zombie] = await store.checkpoints([StepReport(operation_id, 1, "99", continued=True, attempt=1, step_token=token)])
        assert zombie is not None and zombie.decision is Decision.STOP and not zombie.refused, "a zombie is told STOP"
        [stale] = await store.checkpoints([StepReport(operation_id, 1, "99", continued=True, attempt=2, step_token=token)])
        assert stale is not None and stale.refused, "the old token on the new attempt: refused"
        new = outcome.dispatch.step_token
        [fresh] = await store.checkpoints([StepReport(operation_id, 1, "2", continued=True, attempt=2, step_token=new)])
        assert fresh is not None and fresh.decision is Decision.CONTINUE
        events = await store.events_after(operation_id, 0)
        assert [e.type for e in events] == [
            EventType.CREATED,
            EventType.STARTED,
            EventType.STEP_COMPLETED,
            EventType.STEP_RETRIED,
            EventType.STEP_COMPLETED,
        ]
        assert (await store.get_operation(operation_id)).result == 2

    run(tmp_path, scenario)


def test_after_max_attempts_the_operation_fails_with_worker_lost(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        verdicts = [(await store.lease_lapsed(operation_id, "message lost")) for _ in range(2)]
        assert [v.verdict for v in verdicts if v is not None] == [LeaseVerdict.RETRY, LeaseVerdict.GIVE_UP]
        failed = await store.get_operation(operation_id)
        assert failed.state is State.FAILED and failed.error is not None and failed.error["code"] == "WORKER_LOST"
        assert failed.lease_expire_time is None and await store.lapsed() == []

    run(tmp_path, scenario, max_attempts=2)


def test_a_requested_pause_of_a_lost_step_takes_effect_and_resume_runs_the_step_again(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        await store.command(operation_id, Command.PAUSE)
        outcome = await store.lease_lapsed(operation_id, "worker lost")
        assert outcome is not None and outcome.operation.state is State.PAUSED and outcome.operation.current_step == 0
        resumed = await store.command(operation_id, Command.RESUME)
        assert resumed.outbox is not None and resumed.dispatch is not None and resumed.dispatch.start == 0

    run(tmp_path, scenario)


def test_heartbeats_renew_only_the_current_attempt_of_the_current_step(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        store.lease = timedelta(seconds=60)
        assert await store.renew_leases([(operation_id, 0, 2, token), (operation_id, 1, 1, token)]) == 0
        assert await store.renew_leases([(operation_id, 0, 1, "forged"), (operation_id, 0, 1, "")]) == 0
        assert await store.lapsed() == [operation_id], "a step not dispatched to the caller keeps its lapsed lease"
        assert await store.renew_leases([(operation_id, 0, 1, token)]) == 1
        assert await store.lapsed() == []

    run(tmp_path, scenario)


def test_the_outbox_sweep_claims_unsent_chains_once_and_drops_those_of_stopped_operations(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        outcome = await store.lease_lapsed(operation_id, "message lost")
        assert outcome is not None and outcome.outbox is not None
        later = datetime.now(UTC) + timedelta(seconds=1)
        [(claimed, dispatch)] = await store.unsent(later)
        assert claimed == outcome.outbox and dispatch == outcome.dispatch, "rebuilt from the operation as it was dispatched"
        assert await store.unsent(datetime.now(UTC) - timedelta(seconds=1)) == [], "claimed: not again before the grace"
        await store.command(operation_id, Command.CANCEL)
        await store.lease_lapsed(operation_id, "message lost")  # CANCEL_REQUESTED with its step lost: CANCELLED
        assert await store.unsent(later + timedelta(seconds=1)) == []

    run(tmp_path, scenario)


def test_the_outbox_sweep_sends_only_what_is_left_to_run(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        later = datetime.now(UTC) + timedelta(seconds=1)
        await store.command(operation_id, Command.PAUSE)
        paused = await store.lease_lapsed(operation_id, "worker lost")
        assert paused is not None and paused.operation.state is State.PAUSED
        first = await store.command(operation_id, Command.RESUME)
        await store.command(operation_id, Command.PAUSE)
        await store.lease_lapsed(operation_id, "worker lost")
        second = await store.command(operation_id, Command.RESUME)
        assert first.outbox is not None and second.outbox is not None and second.dispatch is not None
        [(claimed, dispatch)] = await store.unsent(later)
        assert claimed == second.outbox and dispatch.step_token == second.dispatch.step_token, "the newest entry only"
        [moved] = await store.checkpoints(
            [StepReport(operation_id, 0, "1", continued=True, attempt=dispatch.attempt, step_token=dispatch.step_token)]
        )
        assert moved is not None and moved.decision is Decision.CONTINUE
        assert await store.unsent(later + timedelta(seconds=2)) == [], "past the entry's first step: the chain reached a worker"

    run(tmp_path, scenario)


def test_entries_sent_soon_are_deleted_together_by_the_next_write(tmp_path: Path) -> None:
    async def main() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            await store.register_workflows([Workflow("w", plan_for(["a", "b"]))], "test")
            workflow = await store.get_workflow("w")
            assert workflow is not None
            changes = [
                await store.create_operation(workflow, input_json="0", request_id="", requester="", labels={}) for _ in range(4)
            ]
            outboxes = [change.outbox for change in changes]
            assert None not in outboxes
            for outbox in outboxes[:3]:
                store.sent_soon(outbox)  # type: ignore[arg-type]  # checked above
            await store.create_operation(workflow, input_json="0", request_id="", requester="", labels={})  # a write
            later = datetime.now(UTC) + timedelta(seconds=1)
            assert [claimed for claimed, _dispatch in await store.unsent(later)] == [outboxes[3], outboxes[3] + 1]
        finally:
            await store.close()

    asyncio.run(main())
