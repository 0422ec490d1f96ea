"""Users count their own steps: the tasks `tappable` inserts (and the closing `finish`) are not steps ("step k/3", not k/6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from celery import chain

from pausable.server import convert, states
from pausable.server.domain import Operation, StepReport, Workflow
from pausable.server.states import Command, Decision, EventType, Numbering, State
from pausable.server.store import Change, Store
from pausable.workers import registry, tappable, workflow
from pausable.workers.examples.demo import add

# What `workflow("tap3", tappable(chain(a, b, c)))` registers: [a, pause, b, pause, c, finish].
TAPPED = [
    {"task": "a", "args": [], "kwargs": {}, "options": {}},
    {"task": "pausable.pause_or_continue", "args": [], "kwargs": {}, "options": {}, "inserted": True},
    {"task": "b", "args": [], "kwargs": {}, "options": {}},
    {"task": "pausable.pause_or_continue", "args": [], "kwargs": {}, "options": {}, "inserted": True},
    {"task": "c", "args": [], "kwargs": {}, "options": {}},
    {"task": "pausable.finish", "args": [], "kwargs": {}, "options": {}, "inserted": True},
]


def test_the_worker_marks_the_entries_it_inserts() -> None:
    flow = workflow("tests.tap3", tappable(chain(add.s(1), add.s(2), add.s(3))))
    registry._workflows.pop(flow.name)  # only its plan is looked at here
    assert [(e["task"], e.get("inserted", False)) for e in flow.plan] == [
        ("demo.tapped.add", False),
        ("pausable.pause_or_continue", True),
        ("demo.tapped.add", False),
        ("pausable.pause_or_continue", True),
        ("demo.tapped.add", False),
        ("pausable.finish", True),
    ]
    assert Numbering.of(flow.plan).count == 3


def test_numbering_counts_the_unmarked_entries() -> None:
    numbering = Numbering.of(TAPPED)
    assert numbering.count == 3
    assert [numbering.number(i) for i in range(7)] == [1, 2, 2, 3, 3, 3, 3]
    assert [numbering.done(i) for i in range(6)] == [1, 1, 2, 2, 3, 3]
    assert [numbering.name(i) for i in range(7)] == ["a", "b", "b", "c", "c", "", ""]
    plain = Numbering.of([{"task": t} for t in "abc"])
    assert (plain.count, [plain.number(i) for i in range(4)]) == (3, [1, 2, 3, 3]), "unmarked plans: every entry counts"
    only_inserted = Numbering.of([{"task": "x", "inserted": True}])
    assert only_inserted.count == 1


def test_checkpoint_messages_count_the_users_steps() -> None:
    numbering = Numbering.of(TAPPED)
    paused = states.checkpoint(State.PAUSE_REQUESTED, 0, 1, 6, numbering=numbering)
    assert paused.decision is Decision.PAUSE and paused.transition.message == "paused after step 1/3"
    going_on = states.checkpoint(State.RUNNING, 0, 1, 6, numbering=numbering)
    assert going_on.decision is Decision.CONTINUE and going_on.record_result
    assert going_on.transition.state is State.RUNNING and going_on.transition.event is None, "the pause point is no step"
    done = states.checkpoint(State.RUNNING, 0, 0, 6, numbering=numbering)
    assert done.transition.message == "step 1/3 done"
    assert states.checkpoint(State.RUNNING, 4, 5, 6, numbering=numbering).transition.state is State.SUCCEEDED


async def tapped_operation(store: Store) -> Change:
    """An operation of a 3-task tappable workflow (TAPPED), just started."""
    await store.register_workflows([Workflow("tap3", TAPPED)], "test")
    flow = await store.get_workflow("tap3")
    assert flow is not None
    return await store.create_operation(flow, input_json="0", request_id="", requester="", labels={})


def test_an_operation_of_a_tapped_workflow_shows_three_steps(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            change = await tapped_operation(store)
            assert change.dispatch is not None
            op_id, token = change.operation.id, change.dispatch.step_token
            started = convert.operation_to_pb(change.operation)
            assert (started.step_number, started.total_steps, started.current_step_name) == (1, 3, "a")

            # `a` is a plain task: the pause point after it reports plan index 1, with a pause requested meanwhile.
            await store.command(op_id, Command.PAUSE)
            [paused] = await store.checkpoints([StepReport(op_id, 1, "1", step_token=token)])
            assert paused is not None and paused.decision is Decision.PAUSE
            op = await store.get_operation(op_id)
            message = convert.operation_to_pb(op)
            assert (op.state, message.current_step, message.step_number, message.total_steps) == (State.PAUSED, 2, 2, 3)
            assert message.current_step_name == "b"

            resumed = await store.command(op_id, Command.RESUME)
            assert resumed.dispatch is not None and resumed.dispatch.start == 2, "Resume runs b, the user's step 2"
            token = resumed.dispatch.step_token
            [going] = await store.checkpoints([StepReport(op_id, 3, "3", step_token=token)])
            assert going is not None and going.decision is Decision.CONTINUE
            running = convert.operation_to_pb(await store.get_operation(op_id))
            assert (running.current_step, running.step_number, running.current_step_name) == (4, 3, "c")
            [last] = await store.checkpoints([StepReport(op_id, 5, "6", step_token=token)])
            assert last is not None and last.decision is Decision.STOP

            events = await store.events_after(op_id, 0)
            messages = [e.message for e in events if e.type in (EventType.STEP_COMPLETED, EventType.PAUSED)]
            assert messages == ["step 1/3 done", "paused after step 1/3", "step 2/3 done", "step 3/3 done"]
            for event in events:
                shown = convert.operation_to_pb(event.operation)
                assert shown.total_steps == 3 and 1 <= shown.step_number <= 3, event
            final = convert.operation_to_pb(await store.get_operation(op_id))
            assert (final.state, final.step_number, final.total_steps, final.current_step) == (
                convert.state_to_pb("SUCCEEDED"), 3, 3, 6,
            )  # fmt: skip
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_failure_in_a_tapped_workflow_names_the_users_step(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            change = await tapped_operation(store)
            assert change.dispatch is not None
            error = {"code": "E", "message": "boom", "step": 4, "step_name": "c"}
            await store.fail(change.operation.id, 4, error, step_token=change.dispatch.step_token)
            message = convert.operation_to_pb(await store.get_operation(change.operation.id))
            assert (message.error.step, message.error.step_number, message.total_steps) == (4, 3, 3)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_snapshots_from_before_user_numbering_read_as_they_were() -> None:
    old = {
        "id": "x", "workflow": "w", "state": "RUNNING", "current_step": 2, "total_steps": 6, "current_step_name": "t",
        "progress": 0.0, "progress_message": "", "result": None, "error": None, "requester": "", "labels": {},
        "create_time": None, "update_time": None, "end_time": None, "last_seq": 3,
    }  # fmt: skip
    again = Operation.from_dict(old)
    assert (again.step_number, again.step_count) == (3, 6)


def test_operations_started_before_the_migration_keep_counting_every_plan_entry(tmp_path: Path) -> None:
    """0007 fills step_count and step_number as the daemon counted before (their plans carry no marks)."""
    from sqlalchemy import text

    from pausable.server import migrate
    from pausable.server.store import make_engine

    async def scenario() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            await migrate.upgrade(engine, "0006")
            columns = "id, workflow, state, current_step, current_step_name, total_steps, step_names, progress, "
            columns += "progress_message, input_json, plan, requester, labels, last_seq, created_at, updated_at"
            async with engine.begin() as conn:
                for op_id, current in (("running", 2), ("done", 6)):
                    await conn.execute(
                        text(
                            f"INSERT INTO operations ({columns}) VALUES (:id, 'w', 'RUNNING', :current, 'x', 6, '[]', 0, '', "
                            "'0', '[]', '', '{}', 1, datetime('now'), datetime('now'))"
                        ),
                        {"id": op_id, "current": current},
                    )
            await migrate.upgrade(engine)
            async with engine.connect() as conn:
                rows = (await conn.execute(text("SELECT id, step_number, step_count FROM operations ORDER BY id"))).all()
            assert [tuple(row) for row in rows] == [("done", 6, 6), ("running", 3, 6)]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_pausable_workflows_marks_the_inserted_tasks() -> None:
    import json

    from pausable.cli.render import steps_line
    from pausable.v1 import operation_pb2 as pb

    flow = pb.Workflow(name="tap3", steps=[e["task"] for e in TAPPED], plan_json=json.dumps(TAPPED))
    assert steps_line(flow) == (
        "a → (pausable.pause_or_continue) → b → (pausable.pause_or_continue) → c → (pausable.finish)"
        "  [3 steps; (inserted) ones are not counted]"
    )
    plain = pb.Workflow(name="p", steps=["a", "b"])
    assert steps_line(plain) == "a → b"
