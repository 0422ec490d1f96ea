"""google.longrunning.Operations over pausable operations, driven with the stock google.longrunning stubs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as lro
from google.protobuf import duration_pb2
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.lro import metadata, response
from support.stack import Stack, history, state_is, step_completed, wait_event

from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb

UNKNOWN = "operations/" + "0" * 32


@pytest.fixture
def lro_stub(stack: Stack) -> Iterator[operations_pb2_grpc.OperationsStub]:
    with grpc.insecure_channel(stack.target) as channel:
        yield operations_pb2_grpc.OperationsStub(channel)


def name(operation_id: str) -> str:
    return f"operations/{operation_id}"


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


def paused_operation(client: Client) -> str:
    """An operation held PAUSED after its first step, so what follows does not race the worker."""
    op = client.start("demo.etl", {"rows": 8, "step_seconds": 0.2})
    wait_event(client, op.id, step_completed(0), timeout=30)
    requested = client.pause(op.id)
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), after_seq=requested.last_seq, timeout=30)
    return op.id


def rpc_error(call: object, *args: object, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=10, **kwargs)  # type: ignore[operator]
    return caught.value


# -- against the daemon ------------------------------------------------------------


def test_get_shows_step_and_progress_then_the_result(client: Client, lro_stub: operations_pb2_grpc.OperationsStub) -> None:
    op = client.start("demo.etl", {"rows": 8, "step_seconds": 0.2})
    wait_event(client, op.id, lambda e: e.type == pb.EVENT_TYPE_PROGRESS, timeout=30)
    running = lro_stub.GetOperation(lro.GetOperationRequest(name=name(op.id)), timeout=10)
    assert running.name == name(op.id) and not running.done and running.WhichOneof("result") is None
    seen = metadata(running)
    assert seen.id == op.id and seen.workflow == "demo.etl" and seen.total_steps == 5

    requested = client.pause(op.id)
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), after_seq=requested.last_seq, timeout=30)
    paused = lro_stub.GetOperation(lro.GetOperationRequest(name=name(op.id)), timeout=10)
    assert not paused.done and metadata(paused).state == pb.OPERATION_STATE_PAUSED
    assert metadata(paused).current_step >= 1 and metadata(paused).result.HasField("struct_value")

    client.resume(op.id)
    finished = lro_stub.WaitOperation(lro.WaitOperationRequest(name=name(op.id), timeout=seconds(60)), timeout=70)
    assert finished.done and finished.WhichOneof("result") == "response"
    assert response(finished) == client.get(op.id).result
    assert response(finished)["steps"] == ["T1", "T2", "T3", "T4", "T5"]
    assert metadata(finished).state == pb.OPERATION_STATE_SUCCEEDED and metadata(finished).current_step == 5

    # The running view was the operation exactly as it stood after one of its events.
    as_of = {e.seq: e.operation for e in history(client, op.id)}[seen.last_seq]
    assert (seen.state, seen.current_step, seen.progress, seen.progress_message) == (
        as_of.state,
        as_of.current_step,
        as_of.progress,
        as_of.progress_message,
    )
    assert any(e.type == pb.EVENT_TYPE_PROGRESS and e.operation.progress > 0 for e in history(client, op.id))


def test_cancel_a_paused_operation_then_delete_it(client: Client, lro_stub: operations_pb2_grpc.OperationsStub) -> None:
    operation_id = paused_operation(client)
    err = rpc_error(lro_stub.DeleteOperation, lro.DeleteOperationRequest(name=name(operation_id)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "only finished operations" in err.details()

    lro_stub.CancelOperation(lro.CancelOperationRequest(name=name(operation_id)), timeout=10)
    cancelled = lro_stub.GetOperation(lro.GetOperationRequest(name=name(operation_id)), timeout=10)
    assert cancelled.done and cancelled.WhichOneof("result") == "error"
    assert cancelled.error.code == code_pb2.CANCELLED == 1
    assert metadata(cancelled).state == pb.OPERATION_STATE_CANCELLED
    lro_stub.CancelOperation(lro.CancelOperationRequest(name=name(operation_id)), timeout=10)  # repeating holds

    lro_stub.DeleteOperation(lro.DeleteOperationRequest(name=name(operation_id)), timeout=10)
    for call, request in (
        (lro_stub.GetOperation, lro.GetOperationRequest(name=name(operation_id))),
        (lro_stub.DeleteOperation, lro.DeleteOperationRequest(name=name(operation_id))),
    ):
        assert rpc_error(call, request).code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as gone:
        list(client.stub.Watch(pb.WatchRequest(operation_id=operation_id), timeout=10))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_wait_returns_at_the_timeout_or_the_deadline_when_not_done(
    client: Client, lro_stub: operations_pb2_grpc.OperationsStub
) -> None:
    operation_id = paused_operation(client)
    started = time.monotonic()
    waited = lro_stub.WaitOperation(lro.WaitOperationRequest(name=name(operation_id), timeout=seconds(0.3)), timeout=10)
    assert time.monotonic() - started >= 0.3
    assert not waited.done and metadata(waited).state == pb.OPERATION_STATE_PAUSED

    # A call deadline shorter than the timeout: the operation, not DEADLINE_EXCEEDED.
    waited = lro_stub.WaitOperation(lro.WaitOperationRequest(name=name(operation_id), timeout=seconds(60)), timeout=1.0)
    assert not waited.done

    pending = lro_stub.WaitOperation.future(lro.WaitOperationRequest(name=name(operation_id)), timeout=60)
    client.resume(operation_id)
    finished = pending.result()
    assert finished.done and response(finished)["steps"] == ["T1", "T2", "T3", "T4", "T5"]


def test_a_failed_operation_carries_its_error(client: Client, lro_stub: operations_pb2_grpc.OperationsStub) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 0.0, "fail_at_step": 2})
    failed = lro_stub.WaitOperation(lro.WaitOperationRequest(name=name(op.id), timeout=seconds(60)), timeout=70)
    assert failed.done and failed.WhichOneof("result") == "error"
    assert failed.error.code == code_pb2.UNKNOWN
    assert "StepFailed" in failed.error.message and "step 2/5" in failed.error.message
    detail = pb.OperationError()
    assert failed.error.details[0].Unpack(detail) and detail.step == 1


def test_list_filters_and_pages_like_operation_service(client: Client, lro_stub: operations_pb2_grpc.OperationsStub) -> None:
    started = [client.start("demo.tapped", n).id for n in range(3)]
    finished = client.start("demo.etl", {"rows": 2, "step_seconds": 0.0})
    finished.wait(timeout=30)

    names: list[str] = []
    token = ""
    while True:
        page = lro_stub.ListOperations(
            lro.ListOperationsRequest(name="operations", filter="workflow=demo.tapped", page_size=2, page_token=token), timeout=10
        )
        assert len(page.operations) <= 2
        assert all(metadata(o).workflow == "demo.tapped" for o in page.operations)
        names += [o.name for o in page.operations]
        token = page.next_page_token
        if not token:
            break
    expected = [op.id for op in client.list(workflow="demo.tapped", page_size=1000).operations]
    assert names == [name(i) for i in expected]
    assert names[:3] == [name(i) for i in reversed(started)]

    done = lro_stub.ListOperations(
        lro.ListOperationsRequest(filter="done=true AND workflow=demo.etl", page_size=1000), timeout=10
    )
    assert name(finished.id) in {o.name for o in done.operations} and all(o.done for o in done.operations)
    succeeded = lro_stub.ListOperations(lro.ListOperationsRequest(filter="state=SUCCEEDED,FAILED", page_size=1000), timeout=10)
    assert name(finished.id) in {o.name for o in succeeded.operations}
    paused = lro_stub.ListOperations(lro.ListOperationsRequest(filter="state=PAUSED", page_size=1000), timeout=10)
    assert name(finished.id) not in {o.name for o in paused.operations}
    for op_id in started:
        client.cancel(op_id)


@pytest.mark.parametrize(
    ("method", "request_", "code", "hint"),
    [
        ("GetOperation", lro.GetOperationRequest(), grpc.StatusCode.INVALID_ARGUMENT, "operations/<id>"),
        ("GetOperation", lro.GetOperationRequest(name="abc"), grpc.StatusCode.INVALID_ARGUMENT, "operations/<id>"),
        ("GetOperation", lro.GetOperationRequest(name="0" * 32), grpc.StatusCode.INVALID_ARGUMENT, "operations/<id>"),
        ("GetOperation", lro.GetOperationRequest(name=UNKNOWN), grpc.StatusCode.NOT_FOUND, "ListOperations"),
        ("CancelOperation", lro.CancelOperationRequest(name=UNKNOWN), grpc.StatusCode.NOT_FOUND, "ListOperations"),
        ("WaitOperation", lro.WaitOperationRequest(name=UNKNOWN), grpc.StatusCode.NOT_FOUND, "ListOperations"),
        ("DeleteOperation", lro.DeleteOperationRequest(name="operations/"), grpc.StatusCode.INVALID_ARGUMENT, "operations/<id>"),
        (
            "WaitOperation",
            lro.WaitOperationRequest(name=UNKNOWN, timeout=duration_pb2.Duration(seconds=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "negative",
        ),
        ("ListOperations", lro.ListOperationsRequest(name="projects/x"), grpc.StatusCode.INVALID_ARGUMENT, '"operations"'),
        ("ListOperations", lro.ListOperationsRequest(filter="color=red"), grpc.StatusCode.INVALID_ARGUMENT, "state=RUNNING"),
        ("ListOperations", lro.ListOperationsRequest(filter="state=BOGUS"), grpc.StatusCode.INVALID_ARGUMENT, "PAUSED"),
        ("ListOperations", lro.ListOperationsRequest(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
        ("ListOperations", lro.ListOperationsRequest(page_token="nope"), grpc.StatusCode.INVALID_ARGUMENT, "next_page_token"),
    ],
)
def test_bad_input_says_what_to_send(
    lro_stub: operations_pb2_grpc.OperationsStub, method: str, request_: object, code: grpc.StatusCode, hint: str
) -> None:
    err = rpc_error(getattr(lro_stub, method), request_)
    assert err.code() == code
    assert hint in err.details()


def test_cancel_of_a_finished_operation_is_failed_precondition(
    client: Client, lro_stub: operations_pb2_grpc.OperationsStub
) -> None:
    op = client.start("demo.etl", {"rows": 2, "step_seconds": 0.0})
    op.wait(timeout=30)
    err = rpc_error(lro_stub.CancelOperation, lro.CancelOperationRequest(name=name(op.id)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert lro_stub.WaitOperation(lro.WaitOperationRequest(name=name(op.id)), timeout=10).done


def test_reflection_and_health_know_the_service(stack: Stack) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        assert "google.longrunning.Operations" in {s.name for s in next(iter(responses)).list_services_response.service}
        check = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="google.longrunning.Operations"), timeout=5
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING
