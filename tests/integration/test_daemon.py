"""The daemon process: health, reflection, graceful shutdown, listing."""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.stack import Stack, step_completed, wait_event

from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb


def test_health_reports_serving_for_each_service(stack: Stack) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "pausable.v1.OperationService", "pausable.v1.WorkerService"):
            assert (
                health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
                == health_pb2.HealthCheckResponse.SERVING
            )


def test_reflection_lists_the_services(stack: Stack) -> None:
    with grpc.insecure_channel(stack.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for s in next(iter(responses)).list_services_response.service}
    assert {"pausable.v1.OperationService", "pausable.v1.WorkerService", "grpc.health.v1.Health"} <= names


def test_list_pages_cover_every_operation_once_newest_first(client: Client) -> None:
    started = [client.start("demo.tapped", n).id for n in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = client.list(workflow="demo.tapped", page_size=2, page_token=token)
        assert len(page.operations) <= 2
        seen += [op.id for op in page.operations]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert seen[: len(started)] == list(reversed(started))
    assert all(op.workflow == "demo.tapped" for op in client.list(workflow="demo.tapped").operations)
    for op_id in started:
        client.cancel(op_id)


def test_list_filters_by_state(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 0.0})
    op.wait(timeout=30)
    succeeded = client.list(states=[pb.OPERATION_STATE_SUCCEEDED], page_size=1000).operations
    assert op.id in {o.id for o in succeeded}
    assert all(o.state == pb.OPERATION_STATE_SUCCEEDED for o in succeeded)
    assert op.id not in {o.id for o in client.list(states=[pb.OPERATION_STATE_PAUSED]).operations}


def test_sigterm_ends_watch_streams_cleanly_and_exits(private_stack: Stack) -> None:
    with private_stack.client() as client:
        op = client.start("demo.etl", {"rows": 3, "step_seconds": 1.0})
        wait_event(client, op.id, lambda e: e.type == pb.EVENT_TYPE_STARTED, timeout=30)
        stream = client.stub.Watch(pb.WatchRequest(operation_id=op.id), timeout=60)
        first = next(stream)
        started = time.monotonic()
        assert private_stack.daemon.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 10
        with pytest.raises(grpc.RpcError) as ended:
            for _ in stream:
                pass
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "after_seq" in ended.value.details()
        assert first.event.seq == 1
        private_stack.daemon.start()
        client.get(op.id).wait(timeout=60)
        events = [r.event for r in client.stub.Watch(pb.WatchRequest(operation_id=op.id), timeout=30)]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert step_completed(0)(next(e for e in events if e.type == pb.EVENT_TYPE_STEP_COMPLETED))
