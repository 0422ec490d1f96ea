"""Who and why: Pause, Resume and Cancel take a `reason`, recorded with the actor on the events they append (both stores)."""

from __future__ import annotations

import asyncio

import pytest
from support.stack import Stack, history, state_is, step_running, wait_event

from pausable.clients import AsyncClient, Client, InvalidArgument
from pausable.v1 import operation_pb2 as pb

SLOW = {"rows": 12, "step_seconds": 0.4}
# The daemon under test runs without authentication: every command's actor is this.
ACTOR = "anonymous"


def reasons(events: list[pb.OperationEvent]) -> list[tuple[str, str, str]]:
    """(type, actor, reason) of the events that carry a reason, in order."""
    return [(pb.EventType.Name(e.type), e.actor, e.reason) for e in events if e.reason]


def test_pause_resume_and_cancel_record_their_reasons_with_the_actor(client: Client) -> None:
    op = client.start("demo.etl", SLOW)
    wait_event(client, op.id, step_running(1), timeout=30)
    requested = client.pause(op.id, reason="db maintenance at 07:00")
    assert requested.state == pb.OPERATION_STATE_PAUSE_REQUESTED
    paused = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
    assert paused.reason == "" and paused.actor == "", "the checkpoint that made the pause take effect was no command"
    resumed = client.resume(op.id, reason="maintenance over")
    assert resumed.state == pb.OPERATION_STATE_RUNNING
    client.cancel(op.id, reason="not needed after all: ticket #42")
    events = history(client, op.id)

    assert events[-1].type == pb.EVENT_TYPE_CANCELLED
    assert reasons(events) == [
        ("EVENT_TYPE_PAUSE_REQUESTED", ACTOR, "db maintenance at 07:00"),
        ("EVENT_TYPE_RESUMED", ACTOR, "maintenance over"),
        ("EVENT_TYPE_CANCEL_REQUESTED", ACTOR, "not needed after all: ticket #42"),
    ]
    # Replayed from the store (not the live fan-out) the events say the same.
    replayed = [r.event for r in client.stub.Watch(pb.WatchRequest(operation_id=op.id, after_seq=0), timeout=30)]
    assert reasons(replayed) == reasons(events)
    # The SDK's typed events and their JSON form carry it too.
    typed = [e for e in client.watch(op.id) if e.reason]
    assert [(e.actor, e.reason) for e in typed] == [(actor, reason) for _, actor, reason in reasons(events)]
    assert typed[0].to_dict()["reason"] == "db maintenance at 07:00"


def test_cancel_of_a_paused_operation_puts_the_reason_on_cancelled(client: Client) -> None:
    op = client.start("demo.etl", SLOW)
    wait_event(client, op.id, step_running(1), timeout=30)
    client.pause(op.id)
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
    assert client.cancel(op.id, reason="abandoned").state == pb.OPERATION_STATE_CANCELLED
    events = history(client, op.id)
    assert reasons(events) == [("EVENT_TYPE_CANCELLED", ACTOR, "abandoned")]
    pause = next(e for e in events if e.type == pb.EVENT_TYPE_PAUSE_REQUESTED)
    assert (pause.actor, pause.reason) == (ACTOR, ""), "no reason given: the actor is still recorded"


def test_a_too_long_reason_is_refused_and_changes_nothing(client: Client) -> None:
    op = client.start("demo.etl", SLOW)
    wait_event(client, op.id, step_running(1), timeout=30)
    for command in (client.pause, client.resume, client.cancel):
        with pytest.raises(InvalidArgument) as refused:
            command(op.id, reason="x" * 1001)
        assert "reason is 1001 characters long; keep it to 1000" in str(refused.value)
    assert client.get(op.id).state == pb.OPERATION_STATE_RUNNING
    longest = "y" * 1000
    assert client.cancel(op.id, reason=longest).state == pb.OPERATION_STATE_CANCEL_REQUESTED
    events = history(client, op.id)
    commands = [e for e in events if e.actor and e.type not in {pb.EVENT_TYPE_CREATED, pb.EVENT_TYPE_STARTED}]
    assert [(pb.EventType.Name(e.type), e.reason) for e in commands] == [("EVENT_TYPE_CANCEL_REQUESTED", longest)], (
        "the refused commands appended nothing"
    )


def test_a_replayed_request_id_returns_the_same_operation_and_appends_nothing(client: Client) -> None:
    op = client.start("demo.etl", SLOW)
    wait_event(client, op.id, step_running(1), timeout=30)
    first = client.pause(op.id, "pause-once", reason="first reason")
    again = client.pause(op.id, "pause-once", reason="another reason")
    assert again.id == first.id and again.state == first.state
    assert again.proto.last_seq == first.proto.last_seq, "the replay appended no event"
    client.cancel(op.id)
    assert reasons(history(client, op.id)) == [("EVENT_TYPE_PAUSE_REQUESTED", ACTOR, "first reason")]


def test_the_async_client_sends_reasons(stack: Stack) -> None:
    async def main() -> list[tuple[str, str]]:
        async with AsyncClient(stack.target) as client:
            op = await client.start("demo.etl", SLOW)
            async for event in op.watch():
                if step_running(1)(event.raw):
                    break
            await op.pause(reason="async pause")
            async for event in op.watch(after_seq=op.proto.last_seq):
                if event.operation.state == pb.OPERATION_STATE_PAUSED:
                    break
            await op.resume(reason="async resume")
            await client.cancel(op.id, reason="async cancel")
            return [(e.type.name, e.reason) async for e in client.watch(op.id) if e.reason]

    found = asyncio.run(main())
    assert [reason for _, reason in found] == ["async pause", "async resume", "async cancel"]
    assert found[0][0] == "PAUSE_REQUESTED" and found[1][0] == "RESUMED"
