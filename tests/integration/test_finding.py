"""Finding operations: list filters and pagination, the global event stream, retention."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from support.stack import Stack

from pausable.clients import Client
from pausable.server.dispatch import plan_for
from pausable.server.domain import OperationFilter, Workflow
from pausable.server.states import State
from pausable.server.store import Store
from pausable.v1 import operation_pb2 as pb


def test_filters_by_label_requester_and_time(stack: Stack, client: Client) -> None:
    before = timestamp_pb2.Timestamp()
    before.GetCurrentTime()
    tagged = client.start("demo.tapped", 1, labels={"team": "data", "run": "nightly"}, requester="alice")
    other = client.start("demo.tapped", 2, labels={"team": "web"}, requester="bob")
    ops, _ = stack.stubs()

    def ids(**fields: object) -> set[str]:
        return {o.id for o in ops.ListOperations(pb.ListOperationsRequest(page_size=1000, **fields)).operations}

    assert tagged.id in ids(labels={"team": "data"}) and other.id not in ids(labels={"team": "data"})
    assert ids(labels={"team": "data", "run": "nightly"}) >= {tagged.id}
    assert tagged.id not in ids(labels={"team": "data", "run": "weekly"})
    assert tagged.id in ids(requester="alice") and other.id not in ids(requester="alice")
    assert {tagged.id, other.id} <= ids(created_after=before)
    assert not {tagged.id, other.id} & ids(created_before=before)
    for op in (tagged, other):
        op.cancel()


def test_pages_stay_stable_while_new_operations_arrive(stack: Stack, client: Client) -> None:
    batch = {"batch": f"stable-{stack.folder.name}"}
    ops, _ = stack.stubs()
    first = [client.start("demo.tapped", n, labels=batch).id for n in range(5)]
    response = ops.ListOperations(pb.ListOperationsRequest(page_size=2, labels=batch))
    seen = [o.id for o in response.operations]
    arrivals = [client.start("demo.tapped", 9, labels=batch).id for _ in range(3)]
    while response.next_page_token:
        response = ops.ListOperations(pb.ListOperationsRequest(page_size=2, labels=batch, page_token=response.next_page_token))
        seen += [o.id for o in response.operations]
    assert seen == list(reversed(first)), "no operation skipped or repeated; newer arrivals start the next listing"
    for op_id in first + arrivals:
        client.cancel(op_id)


def test_global_event_stream_filters_and_resumes_from_its_cursor(stack: Stack, client: Client) -> None:
    label = {"stream": stack.folder.name}
    done = [client.start("demo.etl", {"rows": 2, "step_seconds": 0.0}, labels=label) for _ in range(2)]
    for op in done:
        op.wait(timeout=30)
    ops, _ = stack.stubs()
    expected = sum(op.refresh().proto.last_seq for op in done)
    stream = ops.WatchEvents(pb.WatchEventsRequest(labels=label), timeout=30)
    got, cursor = [], ""
    for response in stream:
        got.append((response.event.operation_id, response.event.seq))
        cursor = response.cursor
        if len(got) == expected - 3:
            break
    stream.cancel()
    resumed = ops.WatchEvents(pb.WatchEventsRequest(labels=label, after_cursor=cursor), timeout=30)
    for response in resumed:
        got.append((response.event.operation_id, response.event.seq))
        if len(got) == expected:
            break
    resumed.cancel()
    assert len(got) == len(set(got)) == expected
    for op in done:
        assert [seq for op_id, seq in got if op_id == op.id] == list(range(1, op.proto.last_seq + 1))
    live = client.start("demo.tapped", 5, labels=label)
    tail = ops.WatchEvents(pb.WatchEventsRequest(labels=label, workflow="demo.tapped", after_cursor=cursor), timeout=30)
    first = next(iter(tail))
    assert first.event.operation_id == live.id and first.event.seq == 1
    tail.cancel()
    live.cancel()
    with pytest.raises(grpc.RpcError) as bad:
        list(ops.WatchEvents(pb.WatchEventsRequest(after_cursor="garbage"), timeout=10))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_retention_purges_old_finished_operations_in_batches(tmp_path: Path, make_database: Callable[[Path], str]) -> None:
    url = make_database(tmp_path)

    async def scenario() -> None:
        store = await Store.open(url)
        try:
            await store.register_workflows([Workflow("w", plan_for(["t1", "t2"]))], "test")
            workflow = await store.get_workflow("w")
            ids = []
            for n in range(7):
                change = await store.create_operation(
                    workflow, input_json=str(n), request_id="", requester="", labels={"n": str(n)}
                )
                ids.append(change.operation.id)
            for op_id in ids[:5]:
                await store.fail(op_id, -1, {"code": "Test", "message": "ended", "step": -1, "step_name": ""})
            assert await store.purge(datetime.now(UTC) - timedelta(hours=1), batch=2) == 0, "too young"
            assert await store.purge(datetime.now(UTC) + timedelta(seconds=1), batch=2) == 5
            left = await store.list_operations(OperationFilter(), limit=100, before_id=None)
            assert {s.id for s in left} == set(ids[5:])
            assert all(s.state is State.RUNNING for s in left), "running operations are kept"
            assert await store.events_after(ids[0], 0) == []
        finally:
            await store.close()

    asyncio.run(scenario())
