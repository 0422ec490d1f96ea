"""Steering beyond the step boundary, against real workers on both stores: a pause within a running step (resumed from
the details it saved), Cancel(force=true) of a step that never checks, and breakpoints (Pause(before_step=N)).

One worker process (concurrency 1), so a step that holds it shows whether it was really terminated: the next
operation can only run once the killed process was replaced. Workflows: tests/workflows_instep.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from support.histories import assert_legal
from support.stack import Stack, history, state_is, wait_event

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import AsyncClient, FailedPrecondition, InvalidArgument
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import worker_pb2

TESTS = Path(__file__).resolve().parent.parent  # tests/: workflows_instep.py
TIMEOUT = 90.0
ITEMS, HOLD_AT = 100, 40
EXPECTED = {"items": ITEMS, "total": sum(index * index for index in range(ITEMS))}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[Path], str]) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("instep")
    with RedisServer(folder / "redis") as redis:
        daemon = DaemonProcess(make_database(folder), redis.url, folder / "daemon.log").start()
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
        worker = WorkerProcess(daemon.target, redis.url, folder / "worker.log", ["workflows_instep"], concurrency=1, env=env)
        stack = Stack(redis, daemon, worker.start(), folder)
        try:
            stack.wait_for_workflows({"instep.count", "instep.sleeper", "instep.quick", "instep.four"}, timeout=TIMEOUT)
            yield stack
        finally:
            stack.stop()


async def cancel_by_force(target: str, operation_id: str) -> int:
    """Cancel(force=true) through the async SDK."""
    async with AsyncClient(target) as client:
        return (await client.cancel(operation_id, force=True, reason="queued")).state


def progress_says(text: str) -> Callable[[pb.OperationEvent], bool]:
    return lambda event: event.type == pb.EVENT_TYPE_PROGRESS and text in event.operation.progress_message


def test_a_pause_within_a_step_resumes_from_its_saved_details_with_the_uninterrupted_result(one_process: Stack) -> None:
    with one_process.client() as client:
        held = client.start("instep.count", {"items": ITEMS, "hold_at": HOLD_AT})
        wait_event(client, held.id, progress_says(f"holding at item {HOLD_AT}"), timeout=TIMEOUT)
        assert client.pause(held.id, reason="mid-step").state == pb.OPERATION_STATE_PAUSE_REQUESTED
        paused = wait_event(client, held.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=TIMEOUT)
        assert paused.message.startswith("paused within step 1/2"), paused.message
        assert paused.operation.step_number == 1, "Resume runs the step it paused within"

        uninterrupted = client.start("instep.count", {"items": ITEMS})
        assert uninterrupted.wait(timeout=TIMEOUT) == EXPECTED

        client.resume(held.id)
        assert client.get(held.id).wait(timeout=TIMEOUT) == EXPECTED
        events = history(client, held.id, timeout=TIMEOUT)
        assert_legal(events)
        assert any(e.operation.progress_message == f"resumed at item {HOLD_AT}" for e in events), "continued from the details"


def test_a_forced_cancel_terminates_a_step_that_never_checks_and_late_reports_change_nothing(
    one_process: Stack, tmp_path: Path
) -> None:
    operations, workers = one_process.stubs()
    with one_process.client() as client:
        sleeper = client.start("instep.sleeper", {"dir": str(tmp_path)})
        wait_event(client, sleeper.id, progress_says("sleeping"), timeout=TIMEOUT)
        queued = client.start("instep.sleeper", {"dir": str(tmp_path)})  # waits behind it: the only process is busy
        assert asyncio.run(cancel_by_force(one_process.target, queued.id)) == pb.OPERATION_STATE_CANCELLED

        cancelled = client.cancel(sleeper.id, force=True, reason="stuck")
        assert cancelled.state == pb.OPERATION_STATE_CANCELLED
        last = wait_event(client, sleeper.id, state_is(pb.OPERATION_STATE_CANCELLED), timeout=10.0)
        assert last.reason == "stuck" and "by force" in last.message
        # The only worker process slept 60 s: another operation runs now only because that step was killed.
        assert client.start("instep.quick", {"n": 1}).wait(timeout=TIMEOUT) == {"n": 1}
        assert not (tmp_path / queued.id).exists(), "the queued step dropped itself as it started"

        # Whatever the killed step could still have sent changes nothing.
        token = (tmp_path / sleeper.id).read_text()
        position = {"operation_id": sleeper.id, "step": 0, "attempt": 1, "step_token": token}
        reply = workers.Checkpoint(worker_pb2.CheckpointRequest(**position, result_json="{}", attempt_id="late"))
        assert reply.decision == worker_pb2.DECISION_STOP
        progress = workers.ReportProgress(worker_pb2.ReportProgressRequest(**position, fraction=0.5, message="late"))
        assert progress.state == pb.OPERATION_STATE_CANCELLED
        error = pb.OperationError(code="Terminated", message="late")
        assert workers.FailOperation(worker_pb2.FailOperationRequest(**position, error=error)).state == (
            pb.OPERATION_STATE_CANCELLED
        )
        after = operations.GetOperation(pb.GetOperationRequest(operation_id=sleeper.id)).operation
        assert (after.state, after.last_seq, after.error.code) == (pb.OPERATION_STATE_CANCELLED, last.seq, "")


def test_a_breakpoint_pauses_before_its_step_and_resume_withdraws_one(one_process: Stack, tmp_path: Path) -> None:
    folder = str(tmp_path)
    with one_process.client() as client:
        op = client.start("instep.four", {"dir": folder, "gate": "go", "hold_step": 2})
        wait_event(client, op.id, progress_says("waiting for the gate"), timeout=TIMEOUT)
        for wrong, error in ((-1, InvalidArgument), (5, InvalidArgument), (1, FailedPrecondition)):
            with pytest.raises(error):
                client.pause(op.id, before_step=wrong)
        set_ = client.pause(op.id, before_step=3, reason="inspect step 2's output")
        assert (set_.state, set_.pause_before_step) == (pb.OPERATION_STATE_RUNNING, 3)
        (tmp_path / "go").touch()
        paused = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=TIMEOUT)
        assert paused.message.startswith("paused before step 3/4 (breakpoint)"), paused.message
        assert (paused.operation.step_number, paused.operation.pause_before_step) == (3, 0)
        assert not (tmp_path / f"{op.id}.3").exists()
        client.resume(op.id)
        assert client.get(op.id).wait(timeout=TIMEOUT)["ran"] == [1, 2, 3, 4]

        withdrawn = client.start("instep.four", {"dir": folder, "gate": "go2"})
        wait_event(client, withdrawn.id, progress_says("waiting for the gate"), timeout=TIMEOUT)
        client.pause(withdrawn.id, before_step=2)
        resumed = client.resume(withdrawn.id)
        assert (resumed.state, resumed.pause_before_step) == (pb.OPERATION_STATE_RUNNING, 0)
        (tmp_path / "go2").touch()
        assert client.get(withdrawn.id).wait(timeout=TIMEOUT)["ran"] == [1, 2, 3, 4]
        events = history(client, withdrawn.id, timeout=TIMEOUT)
        assert_legal(events)
        assert not any(e.type == pb.EVENT_TYPE_PAUSED for e in events)
        assert any(e.type == pb.EVENT_TYPE_RESUMED and "withdrawn" in e.message for e in events)


def test_grpc_codes_of_bad_breakpoints_are_the_documented_ones(one_process: Stack) -> None:
    operations, _ = one_process.stubs()
    with pytest.raises(grpc.RpcError) as caught:
        operations.Pause(pb.PauseRequest(operation_id="0" * 32, before_step=-2))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
