"""No operation is lost or silently stuck: each fault is caused for real, then we look at what a user sees.

Every test runs on both stores, with a 3 s step lease and a 2 s outbox grace.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import redis
from fault_rig import FIVE_STEPS, Rig, assert_sound_history, events, first_event, step_running, wait_until

from pausable.jsonvalue import from_value
from pausable.v1 import operation_pb2 as pb

pytestmark = pytest.mark.timeout(240)


def redis_client(rig: Rig) -> redis.Redis:
    return redis.Redis.from_url(rig.redis.url)


def etl(step_seconds: float, trace: Path) -> dict[str, object]:
    return {"rows": 4, "step_seconds": step_seconds, "trace_file": trace.name}


def runs_per_step(trace: Path, operation_id: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for line in trace.read_text().splitlines():
        op, step = line.split()
        if op == operation_id:
            counts[int(step)] = counts.get(int(step), 0) + 1
    return counts


def test_a_worker_killed_mid_step_is_replaced_and_the_step_runs_again(rig: Rig, tmp_path: Path) -> None:
    """SIGKILL of the whole worker (main process and pool): its lease lapses, the step runs again on another worker."""
    doomed = rig.add_worker()
    trace = rig.demo_dir / "trace"
    with rig.client() as client:
        operation = client.start("demo.etl", etl(2.0, trace))
        first_event(client, operation.id, step_running(1))
        doomed.signal_group(signal.SIGKILL)
        rig.add_worker(wait=False)
        history = events(client, operation.id)
        final = client.get(operation.id).proto
    assert_sound_history(history)
    assert final.state == pb.OPERATION_STATE_SUCCEEDED, final.error
    retried = [event for event in history if event.type == pb.EVENT_TYPE_STEP_RETRIED]
    assert len(retried) == 1 and retried[0].message.endswith("worker lost") and retried[0].operation.current_step == 1
    assert final.attempt == 2 and from_value(final.result)["steps"] == FIVE_STEPS
    assert runs_per_step(trace, operation.id) == {1: 1, 2: 2, 3: 1, 4: 1, 5: 1}


def test_a_zombie_attempt_finishing_late_changes_nothing(rig: Rig, tmp_path: Path) -> None:
    """A frozen worker (SIGSTOP) loses its lease; when it wakes up after the retry, its step's report is refused."""
    frozen = rig.add_worker(concurrency=1)
    trace = rig.demo_dir / "trace"
    with rig.client() as client:
        operation = client.start("demo.etl", etl(1.5, trace))
        first_event(client, operation.id, step_running(1))
        frozen.signal_group(signal.SIGSTOP)
        rig.add_worker(wait=False)
        first_event(client, operation.id, lambda e: e.type == pb.EVENT_TYPE_STEP_COMPLETED and e.operation.current_step == 3)
        frozen.signal_group(signal.SIGCONT)
        history = events(client, operation.id)
        final = client.get(operation.id).proto
    assert_sound_history(history)
    assert final.state == pb.OPERATION_STATE_SUCCEEDED and final.attempt == 2
    assert from_value(final.result)["steps"] == FIVE_STEPS, "the zombie's result was applied"
    # The zombie's T2 ran to its end, but its chain stopped there. Once its task has ended, a forwarded
    # T3 would be queued, unacked (running) or done (traced): with the broker empty, the trace tells.
    zombie_log = rig.workers[0].log_path
    wait_until(
        lambda: "t2_transform" in "".join(l for l in zombie_log.read_text().splitlines() if "succeeded" in l),
        30,
        "the zombie's T2 to end",
    )
    broker = redis_client(rig)
    wait_until(lambda: broker.llen("pausable.demo.etl") == 0 and broker.hlen("unacked") == 0, 30, "the broker to drain")
    counts = runs_per_step(trace, operation.id)
    assert counts == {1: 1, 2: 2, 3: 1, 4: 1, 5: 1}, counts


def test_redis_restarted_empty_loses_no_operation(rig: Rig, tmp_path: Path) -> None:
    """Redis SIGKILLed and restarted without its data: queued chains and stop flags are gone; every operation still ends."""
    rig.add_worker(concurrency=1)
    with rig.client() as client:
        ids = [client.start("demo.etl", {"rows": 3, "step_seconds": 0.4}).id for _ in range(6)]
        first_event(client, ids[0], step_running(1))
        paused = ids[-1]
        client.pause(paused)  # still queued: its stop flag dies with Redis
        rig.redis.stop(signal.SIGKILL)
        rig.redis.start()
        ended = {op: events(client, op, timeout=120)[-1].operation.state for op in ids if op != paused}
        wait_until(lambda: client.get(paused).proto.state == pb.OPERATION_STATE_PAUSED, 60, "the queued pause to take effect")
        client.resume(paused)
        history = events(client, paused)
    assert set(ended.values()) == {pb.OPERATION_STATE_SUCCEEDED}, ended
    assert_sound_history(history)
    assert history[-1].operation.state == pb.OPERATION_STATE_SUCCEEDED
    assert from_value(history[-1].operation.result)["steps"] == FIVE_STEPS


@pytest.mark.parametrize("command", ["start", "resume"])
def test_daemon_killed_between_commit_and_publish_dispatches_after_restart(rig: Rig, command: str) -> None:
    """The fault hook ends the daemon right after the transaction that queued the chain; the outbox sends it on restart."""
    rig.add_worker()
    with rig.client() as client:
        if command == "resume":
            operation_id = client.start("demo.etl", {"rows": 2, "step_seconds": 0.3}).id
            client.pause(operation_id)
            wait_until(lambda: client.get(operation_id).proto.state == pb.OPERATION_STATE_PAUSED, 30, "PAUSED")
        rig.restart_daemon(PAUSABLE_TEST_FAULT="crash-before-publish")
        with pytest.raises(grpc.RpcError) as refused:  # the raw stub: the SDK would retry against the dead daemon
            if command == "start":
                client.stub.StartOperation(
                    pb.StartOperationRequest(workflow="demo.etl", request_id="crash-window"), timeout=20, wait_for_ready=True
                )
            else:
                client.stub.Resume(pb.ResumeRequest(operation_id=operation_id), timeout=20, wait_for_ready=True)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert rig.daemon.process is not None and rig.daemon.process.wait(10) == 70
        rig.restart_daemon()
        if command == "start":
            [operation] = client.list().operations
            operation_id = operation.id
            assert operation.state == pb.OPERATION_STATE_RUNNING
        history = events(client, operation_id)
    assert_sound_history(history)
    assert history[-1].operation.state == pb.OPERATION_STATE_SUCCEEDED


def test_a_lost_step_of_an_operation_asked_to_cancel_ends_cancelled(rig: Rig) -> None:
    """CANCEL_REQUESTED with nothing left to reach a boundary ends CANCELLED when the lease lapses, not never."""
    doomed = rig.add_worker()
    with rig.client() as client:
        operation = client.start("demo.etl", {"rows": 2, "step_seconds": 4})
        first_event(client, operation.id, step_running(0))
        doomed.signal_group(signal.SIGKILL)
        assert client.cancel(operation.id).state == pb.OPERATION_STATE_CANCEL_REQUESTED
        history = events(client, operation.id)
    assert_sound_history(history)
    assert history[-1].type == pb.EVENT_TYPE_CANCELLED and "worker lost" in history[-1].message


def test_a_step_lost_every_time_fails_the_operation_with_worker_lost(rig: Rig) -> None:
    """No worker at all for a workflow whose messages vanish: after max_attempts (3) the operation FAILS with WORKER_LOST."""
    rig.add_worker()
    rig.workers.pop().stop()
    with rig.client() as client:
        operation = client.start("demo.etl", {"rows": 2})
        rig.redis.stop(signal.SIGKILL)  # the chain's message goes with it, again and again
        rig.redis.start()

        def drop_queued() -> bool:
            redis_client(rig).flushall()
            return client.get(operation.id).proto.state == pb.OPERATION_STATE_FAILED

        wait_until(drop_queued, 60, "FAILED")
        history = events(client, operation.id)
    assert_sound_history(history)
    assert [e.type for e in history].count(pb.EVENT_TYPE_STEP_RETRIED) == 2
    assert history[-1].operation.error.code == "WORKER_LOST"


def test_concurrent_starts_with_one_request_id_return_one_operation(rig: Rig) -> None:
    """40 StartOperation calls at once with the same request_id: every one answers the same operation."""
    rig.add_worker()
    with rig.client() as client, ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: client.start("demo.etl", {"rows": 1, "step_seconds": 0}, request_id="once"), range(40)))
        assert len({answer.id for answer in answers}) == 1
        assert len(client.list().operations) == 1


def test_stuck_operations_are_listed_and_counted(rig: Rig) -> None:
    """`ListOperations(stuck=true)` shows an operation whose lease lapsed while the daemon cannot settle it."""
    with rig.client() as client:
        rig.add_worker()
        rig.workers.pop().stop()
        operation = client.start("demo.etl", {"rows": 1})  # queued: no worker consumes it
        assert operation.proto.attempt == 1 and operation.proto.HasField("lease_expire_time")
        assert not client.list(stuck=True).operations
        rig.redis.stop(signal.SIGKILL)  # the daemon cannot tell queued from lost: it waits, and says so
        wait_until(lambda: [op.id for op in client.list(stuck=True).operations] == [operation.id], 30, "stuck")
        rig.redis.start()
        wait_until(lambda: not client.list(stuck=True).operations, 30, "the message-lost retry")
        assert client.get(operation.id).proto.attempt == 2
