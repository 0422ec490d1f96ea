"""Stages of parallel members (server/stages.py) against real workers on both stores: a map stage paused while its
members run and resumed on another worker, each member run once (counted in Redis); a failing member and Retry; a
cancel within a stage; a worker killed while members run; group stages with a plain Celery task among the members.

Workflows: tests/workflows_stages.py. Each member of `stages.files` adds 1 to `runs:<operation>:<file>` in Redis.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from support.histories import assert_legal, completed_members
from support.stack import Stack, history, state_is, wait_event

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import InvalidArgument
from pausable.v1 import operation_pb2 as pb

TESTS = Path(__file__).resolve().parent.parent  # tests/: workflows_stages.py
TIMEOUT = 90.0
LEASE_SECONDS = "3"


def worker(stack_folder: Path, daemon: DaemonProcess, redis_url: str, name: str, concurrency: int = 4) -> WorkerProcess:
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        "PAUSABLE_STEP_LEASE_SECONDS": LEASE_SECONDS,  # the heartbeat renews every third of the daemon's lease
    }
    return WorkerProcess(
        daemon.target, redis_url, stack_folder / f"{name}.log", ["workflows_stages"], concurrency=concurrency, env=env
    ).start()


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[Path], str]) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stages")
    with RedisServer(folder / "redis") as server:
        daemon = DaemonProcess(make_database(folder), server.url, folder / "daemon.log", step_lease_seconds=LEASE_SECONDS)
        stack = Stack(server, daemon.start(), worker(folder, daemon, server.url, "worker-1"), folder)
        try:
            stack.wait_for_workflows(
                {"stages.files", "stages.wide", "stages.group", "stages.map", "stages.tapped"}, timeout=TIMEOUT
            )
            yield stack
        finally:
            stack.stop()


def runs(stack: Stack, operation_id: str) -> dict[str, int]:
    """How many times each member of the operation ran (workflows_stages.process_file counts them)."""
    client = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    keys = client.keys(f"runs:{operation_id}:*")
    return {key.rsplit(":", 1)[1]: int(client.get(key) or 0) for key in keys}


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def expected(count: int) -> dict[str, object]:
    names = [f"f{index:03d}" for index in range(count)]
    return {"count": count, "names": names, "total": sum(index * 10 for index in range(count))}


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """Members wait while this file exists."""
    hold = tmp_path / "hold"
    hold.touch()
    yield hold
    hold.unlink(missing_ok=True)


def test_a_map_paused_while_members_run_resumes_on_another_worker_running_each_member_once(
    staged: Stack, tmp_path: Path, held: Path
) -> None:
    with staged.client() as client:
        op = client.start("stages.files", {"count": 50, "dir": str(tmp_path)})
        started = wait_event(client, op.id, lambda e: e.type == pb.EVENT_TYPE_STAGE_STARTED, timeout=TIMEOUT)
        assert started.message == "stage 2/3 started: 50 members, at most 4 at a time"
        assert (started.operation.stage.members_total, started.operation.stage.members_running) == (50, 4)
        until(lambda: len(runs(staged, op.id)) == 4, "4 members running")
        assert client.pause(op.id, reason="mid-stage").state == pb.OPERATION_STATE_PAUSE_REQUESTED
        held.unlink()
        paused = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=TIMEOUT)
        assert paused.message.startswith("paused within stage 2/3: 4/50 members done"), paused.message
        assert (paused.operation.stage.members_done, paused.operation.stage.members_running) == (4, 0)
        assert runs(staged, op.id) == dict.fromkeys([f"f{index:03d}" for index in range(4)], 1)

        staged.worker.stop()
        staged.worker = worker(staged.folder, staged.daemon, staged.redis.url, "worker-2")
        client.resume(op.id)
        uninterrupted = client.start("stages.files", {"count": 50, "dir": str(tmp_path)})
        assert client.get(op.id).wait(timeout=TIMEOUT) == uninterrupted.wait(timeout=TIMEOUT) == expected(50)
        assert runs(staged, op.id) == dict.fromkeys([f"f{index:03d}" for index in range(50)], 1), "each member ran once"
        events = history(client, op.id, timeout=TIMEOUT)
        assert_legal(events)
        assert sorted(completed_members(events)) == list(range(1, 51)), "every member recorded once"
        kinds = [e.type for e in events]
        assert kinds.count(pb.EVENT_TYPE_STAGE_STARTED) == 1 and kinds.count(pb.EVENT_TYPE_STAGE_COMPLETED) == 1
        assert kinds.count(pb.EVENT_TYPE_MEMBER_COMPLETED) <= 50
        done = next(e for e in events if e.type == pb.EVENT_TYPE_STAGE_COMPLETED)
        assert done.message == "stage 2/3 done: 50 members" and not done.operation.HasField("stage")


def test_a_failing_member_fails_the_operation_and_retry_runs_only_the_members_without_a_result(
    staged: Stack, tmp_path: Path
) -> None:
    with staged.client() as client:
        op = client.start("stages.files", {"count": 12, "dir": str(tmp_path), "fail": "f005"})
        failed = wait_event(client, op.id, state_is(pb.OPERATION_STATE_FAILED), timeout=TIMEOUT)
        error = client.stub.GetOperation(pb.GetOperationRequest(operation_id=op.id)).operation.error
        assert (error.code, error.step_number, error.member_index) == ("ValueError", 2, 5)
        recorded = completed_members(history(client, op.id, timeout=TIMEOUT))
        assert 6 not in recorded

        client.stub.Retry(pb.RetryRequest(operation_id=op.id))
        # The item still says fail: the member fails again, and only it and the members without a result ran again.
        wait_event(client, op.id, state_is(pb.OPERATION_STATE_FAILED), timeout=TIMEOUT, after_seq=failed.seq + 1)
        counts = runs(staged, op.id)
        assert counts["f005"] == 2
        for member in recorded:
            assert counts[f"f{member - 1:03d}"] == 1, "a member whose result was recorded never runs again"


def test_a_cancel_within_a_stage_lets_running_members_finish_and_starts_no_other(
    staged: Stack, tmp_path: Path, held: Path
) -> None:
    with staged.client() as client:
        op = client.start("stages.files", {"count": 20, "dir": str(tmp_path)})
        until(lambda: len(runs(staged, op.id)) == 4, "4 members running")
        assert client.cancel(op.id).state == pb.OPERATION_STATE_CANCEL_REQUESTED
        held.unlink()
        cancelled = wait_event(client, op.id, state_is(pb.OPERATION_STATE_CANCELLED), timeout=TIMEOUT)
        assert cancelled.message == "cancelled within stage 2/3: 4/20 members were done"
        assert sum(runs(staged, op.id).values()) == 4, "no member started after the cancel"
        assert_legal(history(client, op.id, timeout=TIMEOUT))


def test_members_of_a_killed_worker_run_again_and_each_result_is_applied_once(staged: Stack, tmp_path: Path, held: Path) -> None:
    with staged.client() as client:
        op = client.start("stages.files", {"count": 10, "dir": str(tmp_path)})
        until(lambda: len(runs(staged, op.id)) == 4, "4 members running")
        staged.worker.signal_group(signal.SIGKILL)
        staged.worker.stop()
        held.unlink()
        staged.worker = worker(staged.folder, staged.daemon, staged.redis.url, "worker-3")
        assert client.get(op.id).wait(timeout=TIMEOUT) == expected(10)
        events = history(client, op.id, timeout=TIMEOUT)
        assert_legal(events)
        assert any(e.type == pb.EVENT_TYPE_STEP_RETRIED for e in events)
        assert sorted(completed_members(events)) == list(range(1, 11)), "each member's result applied once"
        assert all(count >= 1 for count in runs(staged, op.id).values())


def test_group_and_map_stages_first_in_the_plan_with_a_plain_celery_task_among_the_members(staged: Stack) -> None:
    with staged.client() as client:
        assert client.start("stages.group", 5).wait(timeout=TIMEOUT) == {"results": [10, 25, -5]}
        assert client.start("stages.tapped", 5).wait(timeout=TIMEOUT) == {"results": [100, -10]}
        mapped = client.start("stages.map", [1, 2, 3])
        assert mapped.wait(timeout=TIMEOUT) == [2, 4, 6]
        events = history(client, mapped.id, timeout=TIMEOUT)
        assert_legal(events)
        assert [e.type for e in events][:3] == [pb.EVENT_TYPE_CREATED, pb.EVENT_TYPE_STARTED, pb.EVENT_TYPE_STAGE_STARTED]
        with pytest.raises(InvalidArgument, match="not a list"):
            client.start("stages.map", {"not": "a list"})
        workflow = next(w for w in client.workflows() if w.name == "stages.group")
        assert workflow.steps == ["group(double, square, negate)", "stages.group.combine"]


def test_members_of_a_killed_worker_are_sent_again_while_another_workers_member_keeps_the_step_alive(
    staged: Stack, tmp_path: Path, held: Path
) -> None:
    """Each member has its own lease: the step's lease, which the other worker's member keeps renewing, never lapses,
    yet the killed worker's members are sent again before that member ends."""
    staged.worker.stop()
    first = worker(staged.folder, staged.daemon, staged.redis.url, "worker-4", concurrency=1)
    staged.worker = first
    with staged.client() as client:
        staged.wait_for_workflows({"stages.wide"}, timeout=TIMEOUT)
        op = client.start("stages.wide", {"count": 8, "dir": str(tmp_path)})
        until(lambda: len(runs(staged, op.id)) == 1, "the first worker running a member")
        staged.worker = worker(staged.folder, staged.daemon, staged.redis.url, "worker-5", concurrency=8)
        until(lambda: len(runs(staged, op.id)) >= 2, "the second worker running members")
        first.signal_group(signal.SIGKILL)
        first.stop()
        lost = wait_event(client, op.id, lambda e: e.type == pb.EVENT_TYPE_STEP_RETRIED, timeout=TIMEOUT)
        assert "lost" in lost.message and held.exists(), "sent again while the other worker's members still run"
        assert lost.operation.attempt == 1, "the same attempt: the members that finished or run stay valid"
        held.unlink()
        assert client.get(op.id).wait(timeout=TIMEOUT) == expected(8)
        events = history(client, op.id, timeout=TIMEOUT)
        assert_legal(events)
        assert sorted(completed_members(events)) == list(range(1, 9)), "each member's result applied once"
