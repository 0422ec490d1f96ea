"""The step history, Resume with a new input, Retry and Fork's start in the store and the rules (a real SQLite store)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pausable.server import states
from pausable.server.dispatch import plan_for
from pausable.server.domain import StepReport, Workflow
from pausable.server.errors import InvalidArgument
from pausable.server.states import Command, InvalidTransition, State
from pausable.server.store import NewInput, Store


def test_retry_and_new_inputs_are_allowed_only_where_they_mean_something() -> None:
    for state in (State.FAILED, State.CANCELLED):
        transition = states.retry(state)
        assert (transition.state, transition.event, transition.dispatch) == (State.RUNNING, states.EventType.RETRIED, True)
    for state in (State.RUNNING, State.PAUSED, State.SUCCEEDED, State.PENDING):
        with pytest.raises(InvalidTransition, match="only FAILED or CANCELLED"):
            states.retry(state)
    states.accepts_new_input(State.PAUSED)
    with pytest.raises(InvalidTransition, match="only a PAUSED"):
        states.accepts_new_input(State.RUNNING)


def test_fork_starts_at_the_users_step_skipping_inserted_entries() -> None:
    plan = [{"task": "a"}, {"task": "p", "inserted": True}, {"task": "b"}, {"task": "c"}, {"task": "f", "inserted": True}]
    numbering = states.Numbering.of(plan)
    assert [states.fork_start(n, numbering) for n in (1, 2, 3)] == [0, 2, 3]
    assert [numbering.produced_by(i) for i in range(5)] == ["a", "a", "b", "c", "c"], "inserted entries pass results on"
    for wrong in (0, 4):
        with pytest.raises(ValueError, match="from 1 to 3"):
            states.fork_start(wrong, numbering)


def refuse_strings(data: Any, number: int, name: str, schema: dict[str, Any] | None) -> None:
    if isinstance(data, str):
        raise InvalidArgument(f"step {number} ({name}) takes no strings")


def test_history_records_each_result_a_refused_input_changes_nothing_and_purge_deletes_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            await store.register_workflows([Workflow("w", plan_for(["a", "b", "c"]))], "test")
            workflow = await store.get_workflow("w")
            assert workflow is not None
            change = await store.create_operation(workflow, input_json="0", request_id="", requester="", labels={})
            operation_id, token = change.operation.id, change.dispatch.step_token  # type: ignore[union-attr]
            await store.command(operation_id, Command.PAUSE)
            [paused] = await store.checkpoints([StepReport(operation_id, 0, "1", step_token=token)])
            assert paused is not None and paused.state is State.PAUSED
            before = await store.get_operation(operation_id)

            with pytest.raises(InvalidArgument, match="takes no strings"):
                await store.command(operation_id, Command.RESUME, new_input=NewInput('"x"', lambda *a: refuse_strings("x", *a)))
            after = await store.get_operation(operation_id)
            assert (after.state, after.last_seq, after.result) == (before.state, before.last_seq, 1), "row cache too"

            resumed = await store.command(operation_id, Command.RESUME, new_input=NewInput("5", lambda *a: None))
            assert resumed.operation.result == 5 and resumed.dispatch is not None and resumed.dispatch.argument == 5
            history = await store.step_history(operation_id, with_results=True)
            assert [(r.kind, r.step_number, r.result_json, r.previous_json) for r in history] == [
                ("result", 1, "1", None),
                ("input", 2, "5", "1"),
            ]
            assert history[0].start_time is not None and history[0].end_time >= history[0].start_time  # type: ignore[operator]

            await store.fail(operation_id, 1, {"code": "E", "message": "boom"}, step_token=resumed.dispatch.step_token)
            retried = await store.command(operation_id, Command.RETRY, reason="again")
            assert (retried.operation.state, retried.operation.attempt, retried.operation.error) == (State.RUNNING, 2, None)
            assert retried.dispatch is not None and retried.dispatch.start == 1 and retried.dispatch.argument == 5
            assert [r.kind for r in await store.step_history(operation_id, with_results=False)] == ["result", "input", "failed"]

            await store.command(operation_id, Command.CANCEL)
            await store.checkpoints([StepReport(operation_id, 1, "6", step_token=retried.dispatch.step_token)])
            assert (await store.get_operation(operation_id)).state is State.CANCELLED
            assert await store.purge(datetime.now(UTC) + timedelta(seconds=1)) == 1
            assert await store.step_history(operation_id, with_results=False) == []
        finally:
            await store.close()

    asyncio.run(scenario())
