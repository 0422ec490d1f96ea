"""Deadlines (running time only), pause timeouts and bulk actions, against a real daemon and worker on both stores."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from support.http import call
from support.stack import Stack, history, state_is, step_completed, wait_event

from pausable.clients import AsyncClient, Client, InvalidArgument
from pausable.v1 import operation_pb2 as pb


def seconds_between(first: pb.OperationEvent, second: pb.OperationEvent) -> float:
    return (second.time.ToDatetime() - first.time.ToDatetime()).total_seconds()


def only(events: list[pb.OperationEvent], type_: int) -> pb.OperationEvent:
    found = [event for event in events if event.type == type_]
    assert len(found) == 1, [(pb.EventType.Name(e.type), e.message) for e in events]
    return found[0]


def test_a_deadline_counts_running_time_only_and_pause_timeouts_resume_or_cancel(stack: Stack, client: Client) -> None:
    with pytest.raises(InvalidArgument, match="deadline"):
        client.start("demo.etl", {"step_seconds": 0}, deadline=0.1)
    # A: runs about 2 s of its 8 s budget, but is PAUSED 9 s on the way; the pause timeout resumes it.
    paused_long = client.start("demo.etl", {"step_seconds": 0.4, "rows": 3}, deadline=8)
    # B: its 2 s budget runs out during step 1 or 2 of 5 (2 s each): cancelled at a step's end, long before the last.
    runs_out = client.start("demo.etl", {"step_seconds": 2, "rows": 3}, deadline=2)
    # C: paused, and nobody resumes it within 1 s: cancelled.
    forgotten = client.start("demo.etl", {"step_seconds": 0.5, "rows": 3})
    with pytest.raises(InvalidArgument, match="on_timeout"):
        client._call(client.stub.Pause, pb.PauseRequest(operation_id=forgotten.id, timeout=Duration(seconds=1)))
    too_short = {"timeout": "0.5s", "onTimeout": "PAUSE_TIMEOUT_ACTION_CANCEL"}
    refused = call(stack.http_url, "POST", f"/v1/operations/{forgotten.id}:pause", too_short)
    assert refused.status == 400 and "timeout is 0.5s" in refused.error["message"]
    forgotten.pause(reason="lunch", timeout=1, on_timeout="cancel")
    assert forgotten.pause_on_timeout == "cancel"

    wait_event(client, paused_long.id, step_completed(0))
    paused_long.pause(timeout=9, on_timeout="resume")
    wait_event(client, paused_long.id, state_is(pb.OPERATION_STATE_PAUSED))
    while_paused = client.get(paused_long.id)
    assert while_paused.deadline is not None and while_paused.deadline.total_seconds() == 8
    assert while_paused.deadline_time is None, "the clock stands still while PAUSED"
    used_paused = while_paused.deadline_used
    assert used_paused is not None and 0 < used_paused.total_seconds() < 8
    assert while_paused.pause_timeout_time is not None and while_paused.pause_on_timeout == "resume"
    assert client.get(paused_long.id).deadline_used == used_paused, "no running time passes while PAUSED"

    events = history(client, paused_long.id, timeout=120)
    assert events[-1].operation.state == pb.OPERATION_STATE_SUCCEEDED, events[-1].message
    paused, resumed = only(events, pb.EVENT_TYPE_PAUSED), only(events, pb.EVENT_TYPE_RESUMED)
    assert "pause timed out after 9s: resumed automatically" in resumed.message
    assert not resumed.operation.HasField("pause_timeout_time")
    assert seconds_between(paused, resumed) >= 9
    assert seconds_between(events[0], events[-1]) > 8, "it ran past its budget in wall time, not in running time"
    final = events[-1].operation
    assert final.deadline_used.ToTimedelta().total_seconds() < 8 and not final.HasField("deadline_time")
    assert not final.HasField("error")

    events = history(client, runs_out.id, timeout=120)
    assert events[-1].operation.state == pb.OPERATION_STATE_CANCELLED
    assert events[-1].operation.error.code == "DEADLINE_EXCEEDED"
    requested = only(events, pb.EVENT_TYPE_CANCEL_REQUESTED)
    assert requested.message.startswith("deadline exceeded") and requested.operation.error.code == "DEADLINE_EXCEEDED"
    assert events[-1].operation.deadline_used.ToTimedelta().total_seconds() >= 2
    # Cancelled long before the last step. When the worker took the first step late, the budget ran out before that
    # step ended (a 2 s step, a 2 s budget), and no step completed: both are this case.
    assert all(e.operation.current_step < 4 for e in events if e.type == pb.EVENT_TYPE_STEP_COMPLETED)

    events = history(client, forgotten.id, timeout=120)
    cancelled = events[-1]
    assert cancelled.type == pb.EVENT_TYPE_CANCELLED and cancelled.message == "pause timed out after 1s: cancelled automatically"
    assert seconds_between(only(events, pb.EVENT_TYPE_PAUSED), cancelled) >= 1
    assert only(events, pb.EVENT_TYPE_PAUSE_REQUESTED).reason == "lunch"


def test_bulk_actions_pause_resume_and_cancel_by_filter_and_ids_and_count_their_progress(stack: Stack, client: Client) -> None:
    suite = uuid.uuid4().hex
    labels = {"suite": suite}
    with ThreadPoolExecutor(8) as pool:
        started = list(pool.map(lambda _: client.start("demo.etl", {"step_seconds": 2, "rows": 3}, labels=labels).id, range(20)))
    with pytest.raises(InvalidArgument, match="give operation_ids, or a selector"):
        client._call(client.stub.BulkPause, pb.BulkPauseRequest())

    action = client.bulk_pause(labels=labels, states=[pb.OPERATION_STATE_RUNNING], reason="maintenance", request_id=suite)
    assert action.kind == "pause" and action.matched == 20 and action.reason == "maintenance"
    assert (
        client.bulk_pause(labels=labels, states=[pb.OPERATION_STATE_RUNNING], reason="maintenance", request_id=suite).id
        == action.id
    )
    seen = list(client.watch_bulk_action(action.id, timeout=60))
    finished = seen[-1]
    assert finished.done_processing and (finished.matched, finished.done, finished.skipped, finished.failed) == (20, 20, 0, 0)
    for operation_id in started:
        wait_event(client, operation_id, state_is(pb.OPERATION_STATE_PAUSED))
        requested = only(history_until_paused(client, operation_id), pb.EVENT_TYPE_PAUSE_REQUESTED)
        assert requested.reason == "maintenance" and f"bulk action {action.id}" in requested.message

    missing = "0" * 32
    again = client.wait_bulk_action(client.bulk_pause([*started, missing]).id, timeout=60)
    assert (again.matched, again.done, again.skipped, again.failed) == (21, 0, 21, 0)
    assert again.skipped_reasons == {"already PAUSED": 20, "not found": 1}

    # The CLI: asks first (refused: nothing happens), then, with --yes, resumes them all and shows the progress.
    command = [sys.executable, "-m", "pausable.cli", "--daemon", stack.target, "resume", "--all", "-l", f"suite={suite}"]
    refused = subprocess.run([*command, "-s", "PAUSED"], check=False, input="n\n", capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and f"resume every operation with state PAUSED, label suite={suite}?" in refused.stderr
    assert all(client.get(operation_id).state.name == "PAUSED" for operation_id in started)
    resumed = subprocess.run([*command, "--yes", "--reason", "back"], check=False, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == "resume 20/20: done 20, skipped 0, failed 0 - done"
    for operation_id in started:
        assert client.get(operation_id).state.name == "RUNNING"

    # Over HTTP: the gateway's routes, the same handlers.
    reply = call(stack.http_url, "POST", "/v1/operations:bulkCancel", {"selector": {"labels": labels}, "reason": "cleanup"})
    assert reply.status == 200, reply.body
    bulk_id = reply.body["bulkAction"]["id"]
    body: dict[str, Any] = {}
    for update in client.watch_bulk_action(bulk_id, timeout=60):
        if update.done_processing:
            body = call(stack.http_url, "GET", f"/v1/bulkActions/{bulk_id}").body["bulkAction"]
    assert body["state"] == "BULK_ACTION_STATE_DONE" and body["matched"] == "20" and body["done"] == "20"
    assert not body.get("skippedReasons") and body["reason"] == "cleanup"
    for operation_id in started:
        events = history(client, operation_id, timeout=120)
        assert events[-1].operation.state == pb.OPERATION_STATE_CANCELLED
        stop = (pb.EVENT_TYPE_CANCEL_REQUESTED, pb.EVENT_TYPE_CANCELLED)
        assert next(e.reason for e in events if e.type in stop) == "cleanup"
    assert call(stack.http_url, "GET", f"/v1/bulkActions/{'f' * 32}").status == 404

    async def through_the_async_client() -> None:
        async with AsyncClient(stack.target) as aio:
            again = await aio.bulk_cancel(started, reason="again")
            seen = [update async for update in aio.watch_bulk_action(again.id, timeout=60)]
            assert seen[-1].done_processing and seen[-1].skipped == 20
            assert (await aio.get_bulk_action(again.id)).skipped_reasons == {"already CANCELLED": 20}
            op = await aio.start("demo.etl", {"step_seconds": 2, "rows": 3}, deadline=60)
            assert op.deadline is not None and op.deadline.total_seconds() == 60
            paused = await aio.pause(op.id, timeout=60, on_timeout="resume")
            assert paused.pause_on_timeout == "resume"
            await aio.cancel(op.id)

    asyncio.run(through_the_async_client())


def history_until_paused(client: Client, operation_id: str) -> list[pb.OperationEvent]:
    events = []
    for response in client.stub.Watch(pb.WatchRequest(operation_id=operation_id), timeout=30):
        events.append(response.event)
        if response.event.operation.state == pb.OPERATION_STATE_PAUSED:
            return events
    return events


def test_timers_outlive_a_daemon_restart(private_stack: Stack) -> None:
    """The due times are in the store: a daemon stopped while they run acts on them once it is back."""
    with private_stack.client() as client:
        paused = client.start("demo.etl", {"step_seconds": 0.3, "rows": 3}, deadline=600)
        wait_event(client, paused.id, step_completed(0))
        paused.pause(timeout=3, on_timeout="resume")
        wait_event(client, paused.id, state_is(pb.OPERATION_STATE_PAUSED))
        used = client.get(paused.id).deadline_used
        private_stack.daemon.stop()
        private_stack.daemon.start()
        client.get(paused.id).wait(timeout=120)  # retried while the channel reconnects
        events = history(client, paused.id, timeout=60)
        assert events[-1].operation.state == pb.OPERATION_STATE_SUCCEEDED
        assert "pause timed out after 3s: resumed automatically" in only(events, pb.EVENT_TYPE_RESUMED).message
        assert used is not None and used.total_seconds() < events[-1].operation.deadline_used.ToTimedelta().total_seconds() < 600
