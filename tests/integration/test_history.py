"""Step history, Resume with input, Retry and Fork, end to end with real workers on both stores.

`history.calc` (tests/workflows_history.py): n → n+1 → ×2 → +3 → ×10, step 1 held by a gate file so the operation
pauses after it, step 2 declaring an input schema, step 3 failing until a flag file exists.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.histories import assert_legal
from support.stack import Stack, history, state_is, wait_event

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.cli.main import main
from pausable.clients import AsyncClient, FailedPrecondition, InvalidArgument, StepRecord
from pausable.v1 import operation_pb2 as pb

TESTS = Path(__file__).resolve().parent.parent  # tests/: workflows_history.py
TIMEOUT = 90.0


@pytest.fixture(scope="module")
def calc(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[Path], str]) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("history")
    with RedisServer(folder / "redis") as redis:
        daemon = DaemonProcess(make_database(folder), redis.url, folder / "daemon.log").start()
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        worker = WorkerProcess(
            daemon.target, redis.url, folder / "worker.log", ["workflows_history"], concurrency=2, env={"PYTHONPATH": path}
        )
        stack = Stack(redis, daemon, worker.start(), folder)
        try:
            stack.wait_for_workflows({"history.calc"}, timeout=TIMEOUT)
            yield stack
        finally:
            stack.stop()


def progressing(event: pb.OperationEvent) -> bool:
    return event.type == pb.EVENT_TYPE_PROGRESS


def kinds(steps: list[StepRecord]) -> list[tuple[str, int, int]]:
    return [(record.kind, record.step, record.attempt) for record in steps]


def test_resume_with_input_retry_and_fork_keep_every_step_in_the_history(calc: Stack, tmp_path: Path) -> None:
    gate, flag = tmp_path / "gate", tmp_path / "flag"
    with calc.client() as client:
        op = client.start("history.calc", {"n": 1, "gate": str(gate), "flag": str(flag)})
        wait_event(client, op.id, progressing, timeout=TIMEOUT)  # step 1 waits for the gate
        client.pause(op.id)
        gate.touch()
        wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=TIMEOUT)
        paused = client.get(op.id)
        assert paused.result["n"] == 2 and paused.step == 2

        # Refused by step 2's input schema: INVALID_ARGUMENT, and nothing changed (no event, no history entry).
        with pytest.raises(InvalidArgument) as refused:
            client.resume(op.id, input={"n": "five"}, reason="typo")
        assert "input schema of step 2 (history.calc.two)" in str(refused.value)
        after = client.get(op.id)
        assert (after.state, after.last_seq, after.proto.result_json) == (
            paused.state,
            paused.last_seq,
            paused.proto.result_json,
        )
        assert kinds(client.steps(op.id)) == [("result", 1, 1)]
        with pytest.raises(FailedPrecondition):  # only a PAUSED operation's input can be replaced
            client.retry(op.id)

        # Accepted: step 2 receives it (5 × 2 = 10), then step 3 fails: its flag is not set.
        state = {"n": 5, "gate": str(gate), "flag": str(flag)}
        resumed = client.resume(op.id, input=state, reason="use five")
        assert resumed.state == pb.OPERATION_STATE_RUNNING and resumed.result == state
        wait_event(client, op.id, state_is(pb.OPERATION_STATE_FAILED), timeout=TIMEOUT)
        failed = client.get(op.id)
        assert failed.error is not None and failed.error.step == 3 and "flag" in failed.error.message
        with pytest.raises(FailedPrecondition):
            client.resume(op.id, input=state)

        # Retry once the flag is set: the same operation runs step 3 again (attempt 2) with 10, and goes on.
        flag.touch()
        retried = client.retry(op.id, request_id="retry-once", reason="flag set")
        assert retried.id == op.id and retried.state == pb.OPERATION_STATE_RUNNING and retried.attempt == 2
        assert client.retry(op.id, request_id="retry-once").last_seq >= retried.last_seq  # idempotent: no second retry
        assert client.get(op.id).wait(timeout=TIMEOUT)["n"] == 130  # (10 + 3) × 10
        events = history(client, op.id)
        assert_legal(events)
        types = [pb.EventType.Name(event.type) for event in events]
        assert types.count("EVENT_TYPE_RETRIED") == 1 and types[-1] == "EVENT_TYPE_SUCCEEDED"
        assert types.index("EVENT_TYPE_FAILED") < types.index("EVENT_TYPE_RETRIED")
        retry_event = next(event for event in events if event.type == pb.EVENT_TYPE_RETRIED)
        assert retry_event.reason == "flag set" and retry_event.actor
        resumed_event = next(event for event in events if event.type == pb.EVENT_TYPE_RESUMED)
        assert resumed_event.reason == "use five" and "new input for step 2/4" in resumed_event.message

        # The per-step list: every result, the replaced input (old and new), the failure, the retried step.
        steps = client.steps(op.id, results=True)
        assert kinds(steps) == [
            ("result", 1, 1),
            ("input", 2, 1),
            ("result", 2, 1),
            ("failed", 3, 1),
            ("result", 3, 2),
            ("result", 4, 2),
        ]
        assert [record.name for record in steps] == [
            "history.calc.one",
            "history.calc.two",
            "history.calc.two",
            "history.calc.three",
            "history.calc.three",
            "history.calc.four",
        ]
        assert steps[1].previous["n"] == 2 and steps[1].result["n"] == 5
        assert [record.result["n"] for record in steps if record.kind == "result"] == [2, 10, 13, 130]
        for record in steps:
            assert record.end_time is not None
            if record.kind != "input":
                assert record.start_time is not None and record.duration is not None and record.duration >= 0
            if record.kind != "failed":
                assert record.result_bytes == len(record.raw.result_json.encode())  # type: ignore[union-attr]
        basic = client.steps(op.id)
        assert [record.result_bytes for record in basic] == [record.result_bytes for record in steps]
        assert all(not record.raw.result_json for record in basic)  # type: ignore[union-attr]

        # Fork from step 3: fed the 10 step 2 returned, it ends as its parent did; both records name the link.
        child = client.fork(op.id, 3, reason="again from 3")
        assert (child.parent_id, child.forked_from_step, child.step) == (op.id, 3, 3)
        assert child.wait(timeout=TIMEOUT) == client.get(op.id).result
        assert client.forks(op.id) == [child.id]
        assert kinds(client.steps(child.id)) == [("input", 3, 1), ("result", 3, 1), ("result", 4, 1)]
        created = history(client, child.id)[0]
        assert created.reason == "again from 3" and f"forked from operation {op.id} at step 3/4" in created.message
        # With an input instead: checked against the step's schema, then run from there.
        with pytest.raises(InvalidArgument):
            client.fork(op.id, 2, {"n": 1.5})
        assert client.fork(op.id, 2, {"n": 1}).wait(timeout=TIMEOUT)["n"] == 50  # (1 × 2 + 3) × 10
        with pytest.raises(InvalidArgument):
            client.fork(op.id, 5)

        # The async SDK says the same.
        async def read_async() -> tuple[list[StepRecord], list[str], str]:
            async with AsyncClient(calc.target) as aclient:
                with pytest.raises(FailedPrecondition):  # SUCCEEDED: nothing to retry
                    await aclient.retry(op.id)
                return await aclient.steps(op.id), await aclient.forks(op.id), (await aclient.fork(op.id, 4)).parent_id

        async_steps, async_forks, async_parent = asyncio.run(read_async())
        assert kinds(async_steps) == kinds(steps) and async_forks[0] == child.id and async_parent == op.id

        # The CLI: get --steps (text and JSON), fork, and the refusals' exit code.
        def cli(*args: str) -> Result:
            return CliRunner().invoke(main, ["--daemon", calc.target, *args], catch_exceptions=False)

        shown = cli("get", op.id, "--steps")
        assert shown.exit_code == 0 and "history.calc.three" in shown.output and f"forks: {child.id}, " in shown.output
        listed = json.loads(cli("get", op.id, "--steps", "-o", "json").output)
        assert [entry["kind"] for entry in listed["steps"]] == [kind for kind, _step, _attempt in kinds(steps)]
        assert listed["steps"][1]["previous"]["n"] == 2 and listed["forks"][0] == child.id
        forked = cli("fork", op.id, "--from-step", "4", "-q", "--reason", "cli")
        assert forked.exit_code == 0, forked.output
        assert client.get(forked.output.strip()).wait(timeout=TIMEOUT) == client.get(op.id).result
        refused_cli = cli("resume", op.id, "--input", '{"n": 1}')
        assert refused_cli.exit_code == 1 and "FAILED_PRECONDITION" in refused_cli.output
        assert cli("retry", op.id).exit_code == 1
