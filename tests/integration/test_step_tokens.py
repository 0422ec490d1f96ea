"""A worker may report only on a step that was dispatched: every report that would change an operation presents the
step token its message carried (the pausable_step_token header), from a plain gRPC client (WorkerService stub)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import redis
from support.stack import Stack, history, state_is, wait_event

from pausable.headers import STEP_TOKEN_HEADER
from pausable.jsonvalue import from_value
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import worker_pb2

pytestmark = pytest.mark.timeout(180)


def denied(method: Callable[..., Any], request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        method(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    assert "not dispatched to you" in caught.value.details()
    return caught.value


def idle_operation(stack: Stack, steps: int = 3) -> tuple[str, str]:
    """A RUNNING operation whose steps wait on a queue no worker reads: (its id, that queue)."""
    ops, workers = stack.stubs()
    queue = f"tests.tokens.{uuid.uuid4().hex[:8]}"
    plan = [{"task": "nobody.runs.this", "args": [], "kwargs": {}, "options": {"queue": queue}}] * steps
    workers.RegisterWorkflows(
        worker_pb2.RegisterWorkflowsRequest(workflows=[pb.Workflow(name=queue, plan_json=json.dumps(plan))]), timeout=10
    )
    operation = ops.StartOperation(pb.StartOperationRequest(workflow=queue), timeout=10).operation
    assert operation.state == pb.OPERATION_STATE_RUNNING
    return operation.id, queue


def queued_token(stack: Stack, queue: str) -> str:
    """The step token in the headers of the first step's message, as the broker holds it."""
    broker = redis.Redis.from_url(stack.redis.url)
    for _ in range(100):
        messages = broker.lrange(queue, 0, -1)
        if messages:
            break
        time.sleep(0.05)
    [message] = [json.loads(raw) for raw in messages]
    headers = message["headers"]
    token = headers[STEP_TOKEN_HEADER]
    # Every later step of the chain carries it too (its signature's options are in the message's body).
    body = json.loads(base64.b64decode(message["body"]))
    chain = body[2]["chain"] or []
    assert chain and all(s["options"]["headers"][STEP_TOKEN_HEADER] == token for s in chain)
    return str(token)


def test_forged_reports_are_refused_and_change_nothing(stack: Stack) -> None:
    ops, workers = stack.stubs()
    operation_id, queue = idle_operation(stack)

    def current() -> pb.Operation:
        return ops.GetOperation(pb.GetOperationRequest(operation_id=operation_id), timeout=10).operation

    before = current()
    for token in ("", "forged", "x" * 43):
        for continued in (False, True):
            denied(
                workers.Checkpoint,
                worker_pb2.CheckpointRequest(
                    operation_id=operation_id, step=0, result_json='"forged"', continued=continued, step_token=token
                ),
            )
        denied(
            workers.Checkpoint,
            worker_pb2.CheckpointRequest(operation_id=operation_id, step=2, result_json='"done"', step_token=token),
        )
        denied(
            workers.ReportProgress,
            worker_pb2.ReportProgressRequest(operation_id=operation_id, step=0, fraction=0.5, step_token=token),
        )
        denied(
            workers.FailOperation,
            worker_pb2.FailOperationRequest(
                operation_id=operation_id, step=0, error=pb.OperationError(code="Forged"), step_token=token
            ),
        )
        steps = [worker_pb2.CheckpointRequest(operation_id=operation_id, step=0, result_json="1", step_token=token)]
        assert workers.ReportSteps(worker_pb2.ReportStepsRequest(steps=steps), timeout=10).recorded == 0
        held = [worker_pb2.HeldStep(operation_id=operation_id, step=0, attempt=1, step_token=token)]
        assert workers.RenewLeases(worker_pb2.RenewLeasesRequest(worker="forger", steps=held), timeout=10).renewed == 0
    after = current()
    assert after == before, "nothing changed: state, step, result, progress, events"
    assert after.state == pb.OPERATION_STATE_RUNNING and not after.HasField("result")

    # The worker that holds the step's message has the token: its reports count.
    token = queued_token(stack, queue)
    held = [worker_pb2.HeldStep(operation_id=operation_id, step=0, attempt=1, step_token=token)]
    assert workers.RenewLeases(worker_pb2.RenewLeasesRequest(worker="holder", steps=held), timeout=10).renewed == 1
    workers.ReportProgress(
        worker_pb2.ReportProgressRequest(operation_id=operation_id, step=0, fraction=0.5, step_token=token), timeout=10
    )
    reply = workers.Checkpoint(
        worker_pb2.CheckpointRequest(operation_id=operation_id, step=0, result_json="1", step_token=token), timeout=10
    )
    assert reply.decision == worker_pb2.DECISION_CONTINUE
    assert current().current_step == 1 and from_value(current().result) == 1
    ops.Cancel(pb.CancelRequest(operation_id=operation_id), timeout=10)
    reply = workers.Checkpoint(
        worker_pb2.CheckpointRequest(operation_id=operation_id, step=1, result_json="2", step_token=token), timeout=10
    )
    assert reply.decision == worker_pb2.DECISION_CANCEL and current().state == pb.OPERATION_STATE_CANCELLED
    # A report on a finished operation changes nothing whatever its token: answered STOP, as before.
    reply = workers.Checkpoint(worker_pb2.CheckpointRequest(operation_id=operation_id, step=2, result_json="3"), timeout=10)
    assert reply.decision == worker_pb2.DECISION_STOP


def test_a_resume_dispatches_with_a_new_token_and_the_old_one_is_refused(stack: Stack) -> None:
    ops, workers = stack.stubs()
    operation_id, queue = idle_operation(stack)
    first = queued_token(stack, queue)
    redis.Redis.from_url(stack.redis.url).delete(queue)
    ops.Pause(pb.PauseRequest(operation_id=operation_id), timeout=10)
    reply = workers.Checkpoint(
        worker_pb2.CheckpointRequest(operation_id=operation_id, step=0, result_json="1", step_token=first), timeout=10
    )
    assert reply.decision == worker_pb2.DECISION_PAUSE
    ops.Resume(pb.ResumeRequest(operation_id=operation_id), timeout=10)
    second = queued_token(stack, queue)
    assert second != first
    denied(workers.Checkpoint, worker_pb2.CheckpointRequest(operation_id=operation_id, step=1, result_json="2", step_token=first))
    reply = workers.Checkpoint(
        worker_pb2.CheckpointRequest(operation_id=operation_id, step=1, result_json="2", step_token=second), timeout=10
    )
    assert reply.decision == worker_pb2.DECISION_CONTINUE
    ops.Cancel(pb.CancelRequest(operation_id=operation_id), timeout=10)
    redis.Redis.from_url(stack.redis.url).delete(queue)


def test_real_runs_carry_their_tokens_through_every_step(stack: Stack) -> None:
    """demo.etl reports progress and checkpoints; demo.tapped has plain Celery tasks between its pause points."""
    with stack.client() as client:
        etl = client.start("demo.etl", {"rows": 5, "step_seconds": 0.2})
        etl.wait(timeout=60)
        assert client.get(etl.id).proto.state == pb.OPERATION_STATE_SUCCEEDED
        events = history(client, etl.id)
        assert any(e.type == pb.EVENT_TYPE_PROGRESS for e in events), "progress was taken"

        paused = client.start("demo.etl", {"rows": 3, "step_seconds": 0.5})
        wait_event(client, paused.id, lambda e: e.type == pb.EVENT_TYPE_PROGRESS)
        client.pause(paused.id)
        wait_event(client, paused.id, state_is(pb.OPERATION_STATE_PAUSED))
        client.resume(paused.id)
        wait_event(client, paused.id, state_is(pb.OPERATION_STATE_SUCCEEDED))

        tapped = client.start("demo.tapped", 0)
        tapped.wait(timeout=60)
        final = client.get(tapped.id).proto
        assert final.state == pb.OPERATION_STATE_SUCCEEDED and from_value(final.result) == 10
