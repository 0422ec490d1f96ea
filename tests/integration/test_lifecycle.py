"""Pause, resume and cancel through the real daemon, Redis and celery worker processes."""

from __future__ import annotations

import threading
from pathlib import Path

from support.stack import Stack, history, state_is, step_running, wait_event

from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb

SLOW = 0.4


def run_uninterrupted(client: Client, rows: int = 12) -> dict:
    return client.start("demo.etl", {"rows": rows, "step_seconds": 0.0}).wait(timeout=60)


def trace_lines(path: Path, operation_id: str) -> list[str]:
    return [line.split()[1] for line in path.read_text().splitlines() if line.startswith(operation_id)]


def test_pause_mid_run_then_resume_gives_the_uninterrupted_result(client: Client) -> None:
    expected = run_uninterrupted(client)
    op = client.start("demo.etl", {"rows": 12, "step_seconds": SLOW})
    wait_event(client, op.id, step_running(1), timeout=30)

    requested = client.pause(op.id)
    assert requested.state == pb.OPERATION_STATE_PAUSE_REQUESTED
    paused = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30).operation
    assert paused.current_step == requested.current_step + 1, "paused at the boundary after the step that was running"
    last = op.refresh().result
    assert last["log"] == [f"T{n}" for n in range(1, paused.current_step + 1)]
    assert all(type(value) is int for value in last.get("rows", [])), "integers stay integers in the stored result"

    assert client.resume(op.id).state == pb.OPERATION_STATE_RUNNING
    assert op.wait(timeout=60) == expected


def test_three_pause_resume_cycles_in_one_run(client: Client) -> None:
    expected = run_uninterrupted(client)
    op = client.start("demo.etl", {"rows": 12, "step_seconds": SLOW})
    after = 0
    for cycle in range(3):
        wait_event(client, op.id, step_running(cycle), after_seq=after, timeout=30)
        requested = client.pause(op.id)
        paused = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), after_seq=after, timeout=30)
        assert paused.operation.current_step == requested.current_step + 1 == cycle + 1
        resumed = client.resume(op.id)
        after = resumed.last_seq
    assert op.wait(timeout=60) == expected
    types = [e.type for e in history(client, op.id)]
    assert types.count(pb.EVENT_TYPE_PAUSED) == 3 and types.count(pb.EVENT_TYPE_RESUMED) == 3


def test_resume_before_the_pause_took_effect_withdraws_it(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 1.0})
    wait_event(client, op.id, step_running(1), timeout=30)
    assert client.pause(op.id).state == pb.OPERATION_STATE_PAUSE_REQUESTED
    assert client.resume(op.id).state == pb.OPERATION_STATE_RUNNING
    op.wait(timeout=60)
    events = history(client, op.id)
    types = [e.type for e in events]
    assert pb.EVENT_TYPE_PAUSED not in types, "the stale pause request never took effect"
    withdrawn = [e for e in events if e.type == pb.EVENT_TYPE_RESUMED]
    assert len(withdrawn) == 1 and "withdrawn" in withdrawn[0].message
    assert events[-1].type == pb.EVENT_TYPE_SUCCEEDED


def test_pause_during_the_last_step_ends_succeeded_and_says_too_late(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 0.6})
    wait_event(client, op.id, step_running(4), timeout=30)
    assert client.pause(op.id).state == pb.OPERATION_STATE_PAUSE_REQUESTED
    op.wait(timeout=30)
    last = history(client, op.id)[-1]
    assert last.type == pb.EVENT_TYPE_SUCCEEDED
    assert "too late" in last.message


def test_two_concurrent_resumes_dispatch_the_rest_once(stack: Stack, client: Client, tmp_path: Path) -> None:
    trace = stack.demo_dir / f"trace-{tmp_path.name}.txt"
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 0.2, "trace_file": trace.name})
    client.pause(op.id)
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)

    barrier = threading.Barrier(2)
    answers: list[int] = []

    def resume() -> None:
        with stack.client() as own:
            barrier.wait()
            answers.append(own.resume(op.id).state)

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [pb.OPERATION_STATE_RUNNING] * 2, "the second Resume finds it RUNNING: not an error"
    op.wait(timeout=60)
    assert [e.type for e in history(client, op.id)].count(pb.EVENT_TYPE_RESUMED) == 1
    assert trace_lines(trace, op.id) == ["1", "2", "3", "4", "5"], "every step ran exactly once"


def test_cancel_while_running_stops_at_the_next_boundary(stack: Stack, client: Client, tmp_path: Path) -> None:
    trace = stack.demo_dir / f"trace-{tmp_path.name}.txt"
    op = client.start("demo.etl", {"rows": 5, "step_seconds": SLOW, "trace_file": trace.name})
    wait_event(client, op.id, step_running(1), timeout=30)
    requested = client.cancel(op.id)
    assert requested.state == pb.OPERATION_STATE_CANCEL_REQUESTED
    cancelled = wait_event(client, op.id, state_is(pb.OPERATION_STATE_CANCELLED), timeout=30).operation
    assert cancelled.current_step == requested.current_step
    assert trace_lines(trace, op.id) == [str(n) for n in range(1, requested.current_step + 2)], "nothing ran after the boundary"


def test_cancel_while_paused_is_immediate(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 0.2})
    client.pause(op.id)
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
    assert client.cancel(op.id).state == pb.OPERATION_STATE_CANCELLED
    assert client.cancel(op.id).state == pb.OPERATION_STATE_CANCELLED, "repeating a cancel that holds is fine"


def test_a_failing_step_fails_the_operation_with_its_error(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 0.0, "fail_at_step": 3})
    failed = wait_event(client, op.id, state_is(pb.OPERATION_STATE_FAILED), timeout=30).operation
    assert failed.error.code == "StepFailed"
    assert failed.error.step == 2 and failed.error.step_name == "demo.etl.t3_filter"
    assert "fail_at_step=3" in failed.error.message
    trace = failed.error.traceback
    assert trace.startswith("Traceback (most recent call last):") and 'demo.py", line' in trace, trace
    assert trace.rstrip().endswith("StepFailed: T3 filter failed on purpose (fail_at_step=3)")
    assert client.get(op.id).error.traceback == trace  # type: ignore[union-attr]  # the SDK's StepError


def test_daemon_killed_while_paused_then_restarted_resumes(private_stack: Stack) -> None:
    with private_stack.client() as client:
        expected = run_uninterrupted(client)
        op = client.start("demo.etl", {"rows": 12, "step_seconds": 0.3})
        client.pause(op.id)
        wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
    private_stack.daemon.kill()
    private_stack.daemon.start()
    with private_stack.client() as client:
        assert client.get(op.id).state == "PAUSED"
        client.resume(op.id)
        assert client.get(op.id).wait(timeout=60) == expected


def test_tappable_chain_of_plain_tasks_pauses_and_resumes(client: Client) -> None:
    op = client.start("demo.tapped", 10)
    requested = client.pause(op.id)
    assert requested.state == pb.OPERATION_STATE_PAUSE_REQUESTED
    paused_event = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
    paused = paused_event.operation
    assert paused.current_step == 3, "paused at the pause_or_continue task after the 2nd step"
    assert op.refresh().result == 13
    client.resume(op.id)
    assert op.wait(timeout=30) == 20


def test_tappable_steps_are_the_users_steps_not_the_inserted_tasks(client: Client) -> None:
    """demo.tapped is 4 plain tasks; tappable(nth=2) and the closing finish make its plan 6 entries long. Users see 4."""
    op = client.start("demo.tapped", 10)
    assert (op.step, op.total_steps, op.step_name) == (1, 4, "demo.tapped.add")
    client.pause(op.id)
    paused = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
    assert paused.message == "paused after step 2/4"
    assert (paused.operation.step_number, paused.operation.total_steps) == (3, 4), "Resume runs the user's 3rd step"
    client.resume(op.id)
    assert op.wait(timeout=30) == 20
    events = history(client, op.id)
    done = [e.message for e in events if e.type == pb.EVENT_TYPE_STEP_COMPLETED]
    assert done == ["step 1/4 done", "step 2/4 done", "step 3/4 done", "step 4/4 done"]
    assert all(e.operation.total_steps == 4 and 1 <= e.operation.step_number <= 4 for e in events)
    assert (op.step, op.total_steps, op.current_step) == (4, 4, 6), "done: step 4/4; the plan index is past its 6 entries"


def test_start_with_the_same_request_id_starts_one_run(client: Client) -> None:
    first = client.start("demo.etl", {"rows": 3, "step_seconds": 0.0}, request_id="same-request-1")
    second = client.start("demo.etl", {"rows": 3, "step_seconds": 0.0}, request_id="same-request-1")
    assert first.id == second.id
    first.wait(timeout=30)
    assert [e.type for e in history(client, first.id)].count(pb.EVENT_TYPE_STARTED) == 1


def test_a_lost_stop_flag_only_delays_the_pause_by_a_step(stack: Stack, client: Client) -> None:
    """The Redis flag is a hint: without it the next background report makes the daemon set it again."""
    import redis

    from pausable import flags

    op = client.start("demo.etl", {"rows": 5, "step_seconds": SLOW})
    wait_event(client, op.id, step_running(1), timeout=30)
    requested = client.pause(op.id)
    broker = redis.Redis.from_url(stack.redis.url)
    broker.delete(flags.key(op.id))
    broker.publish(flags.CHANNEL, flags.clear_message(op.id))
    paused = wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30).operation
    assert paused.current_step in (requested.current_step + 1, requested.current_step + 2)
    client.resume(op.id)
    assert op.wait(timeout=60)["steps"] == ["T1", "T2", "T3", "T4", "T5"]
