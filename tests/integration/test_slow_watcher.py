"""A slow watcher never holds back checkpoints or other watchers, and never loses an event."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from support.stack import Stack, start_stack

from pausable.cli.launch import RedisServer
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2

EVENTS = 1500


@pytest.fixture
def small_buffer_stack(tmp_path: Path, make_database) -> Iterator[Stack]:
    """A daemon whose watchers buffer only 8 live events before they must catch up from the store."""
    redis = RedisServer(tmp_path / "redis").start()
    stack = start_stack(tmp_path / "stack", redis, make_database(tmp_path), watch_buffer="8", require_step_tokens="false")
    yield stack
    stack.stop()
    redis.stop()


def test_a_stalled_watcher_catches_up_from_the_store(small_buffer_stack: Stack) -> None:
    ops, workers = small_buffer_stack.stubs()
    plan = [{"task": "nobody.runs.this", "args": [], "kwargs": {}, "options": {"queue": "no-worker-reads-this"}}] * 2
    workers.RegisterWorkflows(
        worker_pb2.RegisterWorkflowsRequest(workflows=[pb.Workflow(name="test.idle", plan_json=json.dumps(plan))])
    )
    op = ops.StartOperation(pb.StartOperationRequest(workflow="test.idle")).operation

    # No BDP probing: the slow reader's HTTP/2 window stays small, so the daemon's stream really backs up.
    slow_channel = grpc.insecure_channel(small_buffer_stack.target, options=[("grpc.http2.bdp_probe", 0)])
    slow = operation_pb2_grpc.OperationServiceStub(slow_channel).Watch(pb.WatchRequest(operation_id=op.id), timeout=120)
    first = next(slow)
    fast_seqs: list[int] = []
    fast_ready = threading.Event()

    def follow() -> None:
        for index, response in enumerate(ops.Watch(pb.WatchRequest(operation_id=op.id), timeout=120)):
            fast_seqs.append(response.event.seq)
            if index == 0:
                fast_ready.set()

    fast = threading.Thread(target=follow)
    fast.start()
    assert fast_ready.wait(30)
    padding = "x" * 1000
    for index in range(EVENTS):
        reply = workers.ReportProgress(
            worker_pb2.ReportProgressRequest(operation_id=op.id, step=0, fraction=index / EVENTS, message=padding), timeout=10
        )
        assert reply.state == pb.OPERATION_STATE_RUNNING, "progress is taken while the slow watcher reads nothing"
    ops.Cancel(pb.CancelRequest(operation_id=op.id))
    workers.Checkpoint(worker_pb2.CheckpointRequest(operation_id=op.id, step=0, result_json="0"))
    fast.join(60)
    last = ops.GetOperation(pb.GetOperationRequest(operation_id=op.id)).operation.last_seq
    assert fast_seqs == list(range(1, last + 1)), "the fast watcher saw every event, in order"
    seqs = [first.event.seq] + [response.event.seq for response in slow]
    assert seqs == list(range(1, last + 1)), "the slow watcher lost nothing and saw nothing twice"
    slow_channel.close()
