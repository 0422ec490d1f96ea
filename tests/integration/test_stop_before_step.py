"""A pause or cancel requested while an operation's next step waits behind a busy worker takes effect before that
step's body runs (workers/task.py checks the stop flag as a step starts), and Resume runs the step exactly once.

One worker process (concurrency 1): operation M's step 1 is queued behind `gated.hold`, which keeps the process busy
until its stop-flag mirror sees M flagged (tests/workflows_gated.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from support.histories import assert_legal
from support.stack import Stack, history, state_is, step_completed, wait_event

from pausable import flags
from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb

TESTS = Path(__file__).resolve().parent.parent  # tests/: workflows_gated.py
TIMEOUT = 90.0


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[Path], str]) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stop-before")
    with RedisServer(folder / "redis") as redis:
        # No outbox sweep within a test: a dropped step must be sent again by the report that dropped it.
        daemon = DaemonProcess(make_database(folder), redis.url, folder / "daemon.log", outbox_grace_seconds="3600").start()
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        env = {"PYTHONPATH": path}
        worker = WorkerProcess(daemon.target, redis.url, folder / "worker.log", ["workflows_gated"], concurrency=1, env=env)
        stack = Stack(redis, daemon, worker.start(), folder)
        try:
            stack.wait_for_workflows({"gated.mark", "gated.hold"}, timeout=TIMEOUT)
            yield stack
        finally:
            stack.stop()


def progressing(event: pb.OperationEvent) -> bool:
    return event.type == pb.EVENT_TYPE_PROGRESS


def runs(folder: Path, operation_id: str, step: int) -> int:
    """How many times step `step` of the operation began its body (its marker file's lines)."""
    marker = folder / f"{operation_id}.{step}"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def queue_step_one_behind_a_busy_worker(client: Client, folder: Path) -> str:
    """Start M and hold the only worker process once M's step 0 is done, so M's step 1 waits on the broker."""
    mark = client.start("gated.mark", {"dir": str(folder), "gate": "go"})
    wait_event(client, mark.id, progressing, timeout=TIMEOUT)  # step 0 runs, on the only process
    hold = client.start("gated.hold", {"until_flagged": mark.id})  # queued behind it
    (folder / "go").touch()  # step 0 ends; step 1 is queued behind the hold
    wait_event(client, hold.id, progressing, timeout=TIMEOUT)
    wait_event(client, mark.id, step_completed(0), timeout=TIMEOUT)
    assert runs(folder, mark.id, 1) == 0
    return mark.id


def test_a_pause_while_the_next_step_is_queued_stops_before_its_body_and_resume_runs_it_once(
    one_process: Stack, tmp_path: Path
) -> None:
    with one_process.client() as client:
        mark = queue_step_one_behind_a_busy_worker(client, tmp_path)
        requested = client.pause(mark)
        assert requested.state == pb.OPERATION_STATE_PAUSE_REQUESTED
        paused = wait_event(client, mark, state_is(pb.OPERATION_STATE_PAUSED), timeout=TIMEOUT)
        assert paused.operation.current_step == 1, "paused at the boundary before step 1"
        assert "had not started" in paused.message
        assert runs(tmp_path, mark, 1) == 0, "step 1's body did not run"

        resumed = client.resume(mark)
        assert resumed.state == pb.OPERATION_STATE_RUNNING
        wait_event(client, mark, state_is(pb.OPERATION_STATE_SUCCEEDED), after_seq=resumed.last_seq, timeout=TIMEOUT)
        assert [runs(tmp_path, mark, step) for step in range(3)] == [1, 1, 1], "every step ran exactly once"
        assert client.get(mark).result["ran"] == [0, 1, 2]
        assert_legal(history(client, mark))


def test_a_cancel_while_the_next_step_is_queued_stops_before_its_body(one_process: Stack, tmp_path: Path) -> None:
    with one_process.client() as client:
        mark = queue_step_one_behind_a_busy_worker(client, tmp_path)
        assert client.cancel(mark).state == pb.OPERATION_STATE_CANCEL_REQUESTED
        events = history(client, mark, timeout=TIMEOUT)
        assert events[-1].type == pb.EVENT_TYPE_CANCELLED and "had not started" in events[-1].message
        assert [runs(tmp_path, mark, step) for step in range(3)] == [1, 0, 0], "nothing ran after the boundary"
        assert_legal(events)


def test_a_step_dropped_on_a_stale_stop_flag_is_sent_again_and_runs_once(one_process: Stack, tmp_path: Path) -> None:
    """A flag with no pause or cancel behind it (as one left over from a Resume that the mirror had not seen yet): the
    worker drops step 1 and reports the boundary without waiting; the daemon, finding the operation RUNNING, clears the
    flag and sends step 1 again as the same attempt."""
    with one_process.client() as client:
        mark = queue_step_one_behind_a_busy_worker(client, tmp_path)
        broker = redis.Redis.from_url(one_process.redis.url)
        broker.set(flags.key(mark), "1")
        broker.publish(flags.CHANNEL, flags.set_message(mark))
        events = history(client, mark, timeout=TIMEOUT)
        assert events[-1].type == pb.EVENT_TYPE_SUCCEEDED
        assert [runs(tmp_path, mark, step) for step in range(3)] == [1, 1, 1], "every step ran exactly once"
        assert client.get(mark).result["ran"] == [0, 1, 2]
        assert {e.type for e in events}.isdisjoint({pb.EVENT_TYPE_PAUSED, pb.EVENT_TYPE_STEP_RETRIED})
        assert events[-1].operation.attempt == 1, "sent again as the same attempt, not a retry"
        assert not broker.exists(flags.key(mark)), "the daemon cleared the stale flag"
        assert_legal(events)
