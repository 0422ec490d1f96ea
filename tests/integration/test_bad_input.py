"""Every RPC answers bad input with the right status code and a message that says what to do, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from support.stack import Stack

from pausable.clients import Client
from pausable.jsonvalue import to_value
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import worker_pb2

UNKNOWN_ID = "0" * 32
MALFORMED_ID = "not-an-id"


def call(method: Callable[..., Any], request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = method(request, timeout=10)
        if hasattr(result, "__iter__"):
            list(result)
    return caught.value


@pytest.fixture(scope="module")
def finished_id(stack: Stack) -> str:
    with stack.client() as client:
        op = client.start("demo.etl", {"rows": 2, "step_seconds": 0.0})
        op.wait(timeout=30)
        return op.id


def by_id_calls(ops: Any, workers: Any, operation_id: str) -> dict[str, tuple[Callable[..., Any], Any]]:
    return {
        "GetOperation": (ops.GetOperation, pb.GetOperationRequest(operation_id=operation_id)),
        "Pause": (ops.Pause, pb.PauseRequest(operation_id=operation_id)),
        "Resume": (ops.Resume, pb.ResumeRequest(operation_id=operation_id)),
        "Cancel": (ops.Cancel, pb.CancelRequest(operation_id=operation_id)),
        "Watch": (ops.Watch, pb.WatchRequest(operation_id=operation_id)),
        "Checkpoint": (workers.Checkpoint, worker_pb2.CheckpointRequest(operation_id=operation_id, step=0, result_json="1")),
        "ReportProgress": (
            workers.ReportProgress,
            worker_pb2.ReportProgressRequest(operation_id=operation_id, step=0, fraction=0.5),
        ),
        "FailOperation": (workers.FailOperation, worker_pb2.FailOperationRequest(operation_id=operation_id, step=0)),
    }


@pytest.mark.parametrize(
    "rpc", ["GetOperation", "Pause", "Resume", "Cancel", "Watch", "Checkpoint", "ReportProgress", "FailOperation"]
)
def test_unknown_and_malformed_ids(stack: Stack, rpc: str) -> None:
    ops, workers = stack.stubs()
    method, request = by_id_calls(ops, workers, UNKNOWN_ID)[rpc]
    error = call(method, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert UNKNOWN_ID in error.details() and "ListOperations" in error.details()

    method, request = by_id_calls(ops, workers, MALFORMED_ID)[rpc]
    error = call(method, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "32 lowercase hex" in error.details()

    method, request = by_id_calls(ops, workers, "")[rpc]
    assert call(method, request).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_start_rejects_unknown_workflows_naming_the_known_ones(stack: Stack) -> None:
    ops, _ = stack.stubs()
    error = call(ops.StartOperation, pb.StartOperationRequest(workflow="no.such.flow"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "demo.etl" in error.details() and "pausable worker" in error.details()
    assert call(ops.StartOperation, pb.StartOperationRequest()).code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"rows": "many"}, "at rows: 'many' is not of type 'integer'"),
        ({"rows": 0}, "at rows"),
        ({"unexpected": 1}, "Additional properties"),
        ([1, 2], "is not of type 'object', 'null'"),
    ],
)
def test_start_validates_the_input_against_the_workflow_schema(stack: Stack, data: Any, fragment: str) -> None:
    ops, _ = stack.stubs()
    before = len(ops.ListOperations(pb.ListOperationsRequest(page_size=1000)).operations)
    error = call(ops.StartOperation, pb.StartOperationRequest(workflow="demo.etl", input=to_value(data)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in error.details() and "schema" in error.details()
    assert len(ops.ListOperations(pb.ListOperationsRequest(page_size=1000)).operations) == before, "nothing was created"


def test_start_rejects_bad_labels_and_a_reused_request_id(stack: Stack) -> None:
    ops, _ = stack.stubs()
    error = call(ops.StartOperation, pb.StartOperationRequest(workflow="demo.tapped", input=to_value(1), labels={"Bad Key": "x"}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "label key" in error.details()
    ops.StartOperation(pb.StartOperationRequest(workflow="demo.tapped", input=to_value(1), request_id="reused-id-1"))
    error = call(ops.StartOperation, pb.StartOperationRequest(workflow="demo.etl", request_id="reused-id-1"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "new request_id" in error.details()


def test_impossible_transitions_are_failed_precondition_and_change_nothing(stack: Stack, finished_id: str) -> None:
    ops, _ = stack.stubs()
    before = ops.GetOperation(pb.GetOperationRequest(operation_id=finished_id)).operation
    for method, request, verb in (
        (ops.Pause, pb.PauseRequest(operation_id=finished_id), "pause"),
        (ops.Resume, pb.ResumeRequest(operation_id=finished_id), "resume"),
        (ops.Cancel, pb.CancelRequest(operation_id=finished_id), "cancel"),
    ):
        error = call(method, request)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"cannot {verb}" in error.details() and "SUCCEEDED" in error.details()
    after = ops.GetOperation(pb.GetOperationRequest(operation_id=finished_id)).operation
    assert after == before


def test_list_validates_page_size_token_and_states(stack: Stack) -> None:
    ops, _ = stack.stubs()
    for request, fragment in (
        (pb.ListOperationsRequest(page_size=-1), "page_size"),
        (pb.ListOperationsRequest(page_size=5000), "page_size"),
        (pb.ListOperationsRequest(page_token="garbage"), "next_page_token"),
        (pb.ListOperationsRequest(states=[pb.OPERATION_STATE_UNSPECIFIED]), "OperationState"),
        (pb.ListOperationsRequest(states=[99]), "OperationState"),
    ):
        error = call(ops.ListOperations, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in error.details()


def test_watch_rejects_a_negative_after_seq(stack: Stack, finished_id: str) -> None:
    ops, _ = stack.stubs()
    error = call(ops.Watch, pb.WatchRequest(operation_id=finished_id, after_seq=-1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_worker_calls_validate_their_fields(stack: Stack, finished_id: str) -> None:
    _, workers = stack.stubs()
    cases = (
        (workers.Checkpoint, worker_pb2.CheckpointRequest(operation_id=finished_id, step=0, result_json="{oops"), "JSON"),
        (workers.Checkpoint, worker_pb2.CheckpointRequest(operation_id=finished_id, step=-2, result_json="1"), "negative"),
        (workers.ReportProgress, worker_pb2.ReportProgressRequest(operation_id=finished_id, step=0, fraction=1.5), "0.0 to 1.0"),
        (workers.RegisterWorkflows, worker_pb2.RegisterWorkflowsRequest(workflows=[pb.Workflow(name="x")]), "steps"),
        (
            workers.RegisterWorkflows,
            worker_pb2.RegisterWorkflowsRequest(workflows=[pb.Workflow(name="x", plan_json="[{]")]),
            "JSON",
        ),
    )
    for method, request, fragment in cases:
        error = call(method, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert fragment in error.details()


def test_a_stale_checkpoint_changes_nothing_and_says_stop(stack: Stack, finished_id: str) -> None:
    ops, workers = stack.stubs()
    before = ops.GetOperation(pb.GetOperationRequest(operation_id=finished_id)).operation
    reply = workers.Checkpoint(worker_pb2.CheckpointRequest(operation_id=finished_id, step=1, result_json='"late"'))
    assert reply.decision == worker_pb2.DECISION_STOP
    assert ops.GetOperation(pb.GetOperationRequest(operation_id=finished_id)).operation == before


def test_client_raises_typed_errors(client: Client, finished_id: str) -> None:
    from pausable.clients import FailedPrecondition, InvalidArgument, NotFound

    with pytest.raises(NotFound):
        client.get(UNKNOWN_ID)
    with pytest.raises(InvalidArgument):
        client.get(MALFORMED_ID)
    with pytest.raises(FailedPrecondition, match="cannot resume"):
        client.resume(finished_id)
