"""Stages (server/stages.py) in the store, a SQLite file, no server process: members dispatched at most max_parallel at a
time, each result recorded once, the join made once, pause and cancel at the stage boundary, a lost worker's members
sent again; the pure rules; and the plans workers register for group/each and Celery's group and chord."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import chain, chord
from celery import group as celery_group
from support.histories import members_named

from pausable.server import stages
from pausable.server.dispatch import chains, plan_for
from pausable.server.domain import Dispatch, HeldStep, StepReport, Workflow
from pausable.server.errors import InvalidArgument
from pausable.server.states import Command, Decision, EventType, InvalidTransition, LeaseVerdict, State
from pausable.server.store import NewInput, Store
from pausable.server.workers_api import _workflow
from pausable.v1 import operation_pb2 as pb

MAP = {"task": "each(work)", "stage": {"each": plan_for(["work"]), "over": "items", "max_parallel": 2}}


def staged_plan() -> list[dict[str, Any]]:
    return [*plan_for(["make"]), MAP, *plan_for(["merge"])]


Scenario = Callable[[Store, str, str], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, plan: list[dict[str, Any]] | None = None, input_json: str = "0") -> None:
    async def main() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            await store.register_workflows([Workflow("w", plan or staged_plan(), max_attempts=3)], "test")
            workflow = await store.get_workflow("w")
            assert workflow is not None
            change = await store.create_operation(workflow, input_json=input_json, request_id="", requester="", labels={})
            assert change.dispatch is not None
            await scenario(store, change.operation.id, change.dispatch.step_token)
        finally:
            await store.close()

    asyncio.run(main())


async def enter(store: Store, operation_id: str, token: str, items: int) -> Dispatch:
    """Step `make` returns `items` items: the stage's first members are dispatched."""
    [made] = await store.checkpoints([StepReport(operation_id, 0, json.dumps({"items": list(range(items))}), step_token=token)])
    assert made is not None and made.resend is not None and made.outbox is not None
    return made.resend


def member(operation_id: str, dispatch: Dispatch, index: int, **fields: Any) -> StepReport:
    result = fields.pop("result", json.dumps(index * 10))
    return StepReport(
        operation_id, 1, result, continued=True, attempt=dispatch.attempt, step_token=dispatch.step_token, member=index, **fields
    )


def resent(outcomes: list[Any]) -> tuple[int, ...] | None:
    """The members a batch of reports sent next (on its last report's answer)."""
    dispatches = [o.resend for o in outcomes if o is not None and o.resend is not None]
    return dispatches[-1].members if dispatches else None


async def types(store: Store, operation_id: str) -> list[EventType]:
    return [event.type for event in await store.events_after(operation_id, 0)]


def test_members_go_out_max_parallel_at_a_time_each_recorded_once_and_the_join_feeds_the_next_step(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        first = await enter(store, operation_id, token, 5)
        assert first.members == (0, 1)
        assert (await store.get_operation(operation_id)).stage == (5, 0, 2)
        [one, again] = await store.checkpoints([member(operation_id, first, 1), member(operation_id, first, 1, result="99")])
        assert resent([one, again]) == (2,), "a slot freed: the next member"
        assert again is not None and again.decision is Decision.STOP, "a repeated report changes nothing"
        assert again.resend is not None and again.resend.step_token == first.step_token, "more of the same dispatch"
        outcomes = await store.checkpoints([member(operation_id, first, 0), member(operation_id, first, 2)])
        assert resent(outcomes) == (3, 4)
        [_, last] = await store.checkpoints([member(operation_id, first, 4), member(operation_id, first, 3)])
        joined = await store.get_operation(operation_id)
        assert joined.result == [0, 10, 20, 30, 40] and joined.current_step == 2 and joined.stage is None
        assert last is not None and last.resend is not None and last.resend.start == 2 and last.resend.argument == joined.result
        events = await store.events_after(operation_id, 0)
        kinds = [event.type for event in events]
        assert kinds[:4] == [EventType.CREATED, EventType.STARTED, EventType.STEP_COMPLETED, EventType.STAGE_STARTED]
        assert kinds[-1] == EventType.STAGE_COMPLETED and set(kinds[4:-1]) == {EventType.MEMBER_COMPLETED}
        named = [m for event in events if event.type == EventType.MEMBER_COMPLETED for m in members_named(event.message)]
        assert sorted(named) == [1, 2, 3, 4, 5], "each member named once; those of the last 50 ms by the join"
        late = await store.checkpoints([member(operation_id, first, 2)])
        assert late[0] is not None and late[0].decision is Decision.STOP
        assert (await store.get_operation(operation_id)).last_seq == len(events), "a late report changes nothing"

    run(tmp_path, scenario)


def test_a_pause_takes_effect_once_no_member_runs_and_resume_sends_only_the_unfinished(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        first = await enter(store, operation_id, token, 4)
        await store.command(operation_id, Command.PAUSE)
        [done] = await store.checkpoints([member(operation_id, first, 0)])
        assert done is not None and done.resend is None, "no member starts under a requested pause"
        assert (await store.get_operation(operation_id)).state is State.PAUSE_REQUESTED
        dropped = member(operation_id, first, 1, result="null", next_not_started=True, next_dropped=True)
        [stop] = await store.checkpoints([dropped])
        assert stop is not None and stop.decision is Decision.PAUSE
        paused = await store.get_operation(operation_id)
        assert paused.state is State.PAUSED and paused.stage == (4, 1, 0)
        with pytest.raises(InvalidTransition, match="within a stage"):
            await store.command(operation_id, Command.RESUME, new_input=NewInput("[1]", [1]))
        resumed = await store.command(operation_id, Command.RESUME)
        assert resumed.dispatch is not None and resumed.dispatch.members == (1, 2), "member 0 is done: never again"
        assert resumed.dispatch.step_token != first.step_token

    run(tmp_path, scenario)


def test_members_recorded_within_50_ms_of_an_event_are_named_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stages, "ANNOUNCE_SECONDS", 60.0)  # the window, long enough for a loaded machine

    async def scenario(store: Store, operation_id: str, token: str) -> None:
        first = await enter(store, operation_id, token, 4)
        [one] = await store.checkpoints([member(operation_id, first, 0)])
        [two] = await store.checkpoints([member(operation_id, first, 1)])
        assert one is not None and not one.unannounced, "the first is named at once"
        assert two is not None and two.unannounced, "the second waits: the engine calls announce_members soon"
        await store.announce_members(operation_id)
        events = await store.events_after(operation_id, 0)
        assert [event.message for event in events if event.type == EventType.MEMBER_COMPLETED] == [
            "member 1 of stage 2/3 done (1/4)",
            "member 2 of stage 2/3 done (2/4)",
        ]
        assert events[-1].snapshot["stage"] == [4, 2, 2]

    run(tmp_path, scenario)


def test_a_member_whose_lease_lapsed_is_sent_again_until_max_attempts_while_one_a_worker_holds_is_not(
    tmp_path: Path,
) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        first = await enter(store, operation_id, token, 3)
        store.lease = timedelta(0)  # every lease written from now on has already lapsed
        await store.checkpoints([member(operation_id, first, 1, result="null", next_not_started=True)])  # renews nothing
        store.lease = timedelta(seconds=60)
        assert await store.renew_leases([HeldStep(operation_id, 1, 1, first.step_token, 1)]) == 1  # a worker has 1
        assert await store.lapsed_members() == []
        store.lease = timedelta(0)
        await store.renew_leases([HeldStep(operation_id, 1, 1, first.step_token, 0)])  # member 0's lease: lapsed now
        assert await store.lapsed_members() == [operation_id]
        again = await store.members_lost(operation_id, "worker lost")
        assert again is not None and again.dispatch is not None and again.outbox is not None
        assert again.dispatch.members == (0,) and again.dispatch.step_token == first.step_token
        events = await store.events_after(operation_id, 0)
        assert (events[-1].type, events[-1].message) == (
            EventType.STEP_RETRIED,
            "member 1 of stage 2/3 lost (worker lost): sent again",
        )
        assert (await store.members_lost(operation_id, "worker lost")) is not None  # sent a third time
        failed = await store.members_lost(operation_id, "worker lost")
        assert failed is not None and failed.operation.state is State.FAILED and failed.operation.error is not None
        assert (failed.operation.error["code"], failed.operation.error["member_index"]) == ("WORKER_LOST", 0)
        assert await store.members_lost(operation_id, "worker lost") is None, "an ended operation's leases are dropped"
        assert await store.lapsed_members() == []

    run(tmp_path, scenario)


def test_a_lost_member_under_a_pause_counts_as_dropped(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        store.lease = timedelta(0)
        first = await enter(store, operation_id, token, 2)
        await store.command(operation_id, Command.PAUSE)
        await store.checkpoints([member(operation_id, first, 1)])
        paused = await store.members_lost(operation_id, "worker lost")
        assert paused is not None and paused.operation.state is State.PAUSED and paused.operation.stage == (2, 1, 0)
        resumed = await store.command(operation_id, Command.RESUME)
        assert resumed.dispatch is not None and resumed.dispatch.members == (0,)

    run(tmp_path, scenario)


def test_a_member_dropped_under_a_pause_that_resume_withdrew_is_sent_again(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        first = await enter(store, operation_id, token, 4)
        await store.command(operation_id, Command.PAUSE)
        dropped = member(operation_id, first, 1, result="null", next_not_started=True, next_dropped=True)
        assert [o.decision for o in await store.checkpoints([dropped]) if o is not None] == [Decision.PAUSE]
        assert (await store.get_operation(operation_id)).stage == (4, 0, 1)
        resumed = await store.command(operation_id, Command.RESUME)
        assert resumed.dispatch is not None and resumed.dispatch.members == (1,), "the dropped member goes out again"
        assert resumed.operation.state is State.RUNNING and resumed.operation.stage == (4, 0, 2)
        assert resent(await store.checkpoints([member(operation_id, first, 1)])) == (2,)
        await store.checkpoints([member(operation_id, first, 0), member(operation_id, first, 2)])
        await store.checkpoints([member(operation_id, first, 3)])
        assert (await store.get_operation(operation_id)).result == [0, 10, 20, 30]

    run(tmp_path, scenario)


def test_a_cancel_within_a_stage_and_a_lost_worker(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        first = await enter(store, operation_id, token, 3)
        store.lease = timedelta(0)  # every lease has already lapsed when it is written
        await store.checkpoints([member(operation_id, first, 1)])
        lost = await store.lease_lapsed(operation_id, "worker lost")
        assert lost is not None and lost.verdict is LeaseVerdict.RETRY and lost.dispatch is not None
        assert lost.dispatch.members == (0, 2) and lost.dispatch.attempt == 2
        [stale] = await store.checkpoints([member(operation_id, first, 0)])
        assert stale is not None and stale.decision is Decision.STOP, "the lost attempt's report changes nothing"
        await store.command(operation_id, Command.CANCEL)
        retried = lost.dispatch
        await store.checkpoints([member(operation_id, retried, 0)])
        [stop] = await store.checkpoints([member(operation_id, retried, 2, result="null", next_not_started=True)])
        assert stop is not None and stop.decision is Decision.CANCEL
        cancelled = await store.get_operation(operation_id)
        assert cancelled.state is State.CANCELLED and cancelled.result == {"items": [0, 1, 2]}

    run(tmp_path, scenario)


def test_a_stage_first_in_the_plan_starts_with_the_operation_and_its_input_is_checked(tmp_path: Path) -> None:
    plan = [{"task": "each(work)", "stage": {"each": plan_for(["work"]), "over": None, "max_parallel": 0}}]

    async def scenario(store: Store, operation_id: str, token: str) -> None:
        started = await store.get_operation(operation_id)
        assert started.stage == (3, 0, 3) and await types(store, operation_id) == [
            EventType.CREATED, EventType.STARTED, EventType.STAGE_STARTED
        ]  # fmt: skip
        workflow = await store.get_workflow("w")
        assert workflow is not None
        for wrong, words in (("{}", "not a list"), ("[]", "empty list")):
            with pytest.raises(InvalidArgument, match=words):
                await store.create_operation(workflow, input_json=wrong, request_id="", requester="", labels={})

    run(tmp_path, scenario, plan, input_json="[1, 2, 3]")


def test_a_map_over_what_is_not_a_list_fails_the_operation_with_a_clear_error(tmp_path: Path) -> None:
    async def scenario(store: Store, operation_id: str, token: str) -> None:
        await store.checkpoints([StepReport(operation_id, 0, '{"items": 7}', step_token=token)])
        failed = await store.get_operation(operation_id)
        assert failed.state is State.FAILED and failed.error is not None
        assert failed.error["code"] == "STAGE_INPUT_INVALID" and "which is a number, not a list" in failed.error["message"]

    run(tmp_path, scenario)


def test_member_messages_carry_their_index_and_their_item() -> None:
    dispatch = Dispatch("op", staged_plan(), 1, {"items": ["a", "b", "c"]}, 2, {}, "secret", (0, 2))
    sent = chains(dispatch)
    assert [chain[0]["args"] for chain in sent] == [["a"], ["c"]]
    assert [chain[0]["options"]["headers"]["pausable_member"] for chain in sent] == [0, 2]
    plain = Dispatch("op", staged_plan(), 0, 1, 1, {}, "secret")
    assert [[step["task"] for step in chain] for chain in chains(plain)] == [["make"]], "a chain stops before a stage"


@pytest.mark.parametrize(
    ("argument", "over", "words"),
    [({"x": []}, "items", "keys ['x']"), ([1], "items", "which is a list"), ("s", None, "a string, not a list")],
)
def test_map_inputs_that_are_not_lists_are_named(argument: Any, over: str | None, words: str) -> None:
    with pytest.raises(stages.StageInputError, match=words.replace("[", r"\[")):
        stages.width({"each": [], "over": over}, argument, "each(work)")


def test_workers_register_groups_maps_and_celerys_group_and_chord_as_stages() -> None:
    from pausable.workers import app, each, group, step, tappable, workflow

    @step(name="t.stages.a")
    def a(n: int) -> int:
        return n

    @app.task(name="t.stages.plain")
    def plain(n: int) -> int:
        return n

    flow = workflow("t.stages", [plain, group(a, plain, max_parallel=1), each(a, over="xs"), a])
    entries = flow.plan
    assert [e["task"] for e in entries] == [
        "t.stages.plain",
        "pausable.pause_or_continue",
        "group(a, plain)",
        "each(a)",
        "t.stages.a",
    ]
    assert entries[1]["inserted"], "the chain before a stage ends with a task that reports"
    members = entries[2]["stage"]["members"]
    assert [[e["task"] for e in chain] for chain in members] == [["t.stages.a"], ["t.stages.plain", "pausable.pause_or_continue"]]
    assert entries[3]["stage"] == {"each": [entries[4]], "over": "xs", "max_parallel": 0}
    celery = workflow("t.celery", [a.s(), chord(celery_group(a.s(), a.s()), a.s())])
    assert [e["task"] for e in celery.plan] == ["t.stages.a", "group(a, a)", "t.stages.a"]
    tapped = workflow("t.tapped", tappable(chain(plain.s(), celery_group(a.s(), plain.s()), plain.s())))
    # chain() makes the group and the task after it a chord: tappable's pause point comes before it
    assert [e["task"] for e in tapped.plan] == [
        "t.stages.plain", "pausable.pause_or_continue", "group(a, plain)", "t.stages.plain", "pausable.finish"
    ]  # fmt: skip
    with pytest.raises(TypeError, match="each member is one task"):
        workflow("t.nested", [group(chain(a.s(), a.s()), a)])
    registered = _workflow(flow.to_pb())  # and the daemon accepts what the worker sends
    assert registered.steps == [e["task"] for e in entries]
    with pytest.raises(InvalidArgument, match="not stages"):
        _workflow(pb.Workflow(name="bad", plan_json=json.dumps([{"task": "s", "stage": {"members": [[MAP]]}}])))
