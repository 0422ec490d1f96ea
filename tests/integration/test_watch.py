"""Watch: replay from the store, live streaming, reconnection with after_seq."""

from __future__ import annotations

import grpc
import pytest
from support.stack import history, step_completed, wait_event

from pausable.clients import Client, OutOfRange
from pausable.v1 import operation_pb2 as pb


def test_watch_from_zero_after_completion_replays_everything(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 0.05})
    op.wait(timeout=30)
    events = history(client, op.id)
    assert [e.seq for e in events] == list(range(1, op.refresh().proto.last_seq + 1))
    assert events[0].type == pb.EVENT_TYPE_CREATED and events[-1].type == pb.EVENT_TYPE_SUCCEEDED
    assert list(client.watch(op.id, after_seq=op.proto.last_seq)) == [], "nothing after the terminal event"


def test_reconnect_mid_run_with_after_seq_has_no_gap_and_no_duplicate(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 0.3})
    seen: list[int] = []
    stream = client.stub.Watch(pb.WatchRequest(operation_id=op.id), timeout=30)
    for response in stream:
        seen.append(response.event.seq)
        if step_completed(1)(response.event):
            break
    stream.cancel()
    for response in client.stub.Watch(pb.WatchRequest(operation_id=op.id, after_seq=seen[-1]), timeout=30):
        seen.append(response.event.seq)
    assert seen == list(range(1, op.refresh().proto.last_seq + 1))
    assert op.state == "SUCCEEDED"


def test_many_watchers_see_the_same_history(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 5, "step_seconds": 0.1})
    wait_event(client, op.id, step_completed(0), timeout=30)
    streams = [client.stub.Watch(pb.WatchRequest(operation_id=op.id), timeout=30) for _ in range(20)]
    seqs = [[r.event.seq for r in stream] for stream in streams]
    assert all(s == seqs[0] for s in seqs)
    assert seqs[0] == list(range(1, op.refresh().proto.last_seq + 1))


def test_watch_past_the_last_event_is_out_of_range_naming_the_last_seq(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 0})
    op.wait(timeout=30)
    last = op.refresh().last_seq
    assert list(client.stub.Watch(pb.WatchRequest(operation_id=op.id, after_seq=last), timeout=10)) == []
    with pytest.raises(grpc.RpcError) as raised:
        list(client.stub.Watch(pb.WatchRequest(operation_id=op.id, after_seq=last + 5), timeout=10))
    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert f"last seq is {last}" in (raised.value.details() or "")
    with pytest.raises(OutOfRange):
        list(client.watch(op.id, after_seq=last + 1))


def test_watch_past_the_end_of_a_running_operation_is_out_of_range_too(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 0.5})
    try:
        with pytest.raises(grpc.RpcError) as raised:
            list(client.stub.Watch(pb.WatchRequest(operation_id=op.id, after_seq=10_000), timeout=10))
        assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE
    finally:
        client.cancel(op.id)
