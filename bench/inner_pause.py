"""Pause → PAUSED for a cooperative step: a pause that lands within a running step (pause_here), not at its end.

A real `pausable worker` with its default prefork pool (2 processes) runs the example `demo.long` (workers/examples/
demo.py): one step over 10,000 items of 1 ms each, checking stop_requested() per item. Each sample starts an
operation, waits until its step runs (its first progress, after 50 items) and a random 0-200 ms more, calls Pause, and
times from the call to the PAUSED event on a Watch stream (which must say "paused within step"); the paused
operation is then cancelled. Without the in-step pause the same Pause would take effect at the step's end, about
10 s later.

- inner_pause_latency_p99_ms (target ≤ 1000 ms), and its p50.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from pathlib import Path

import grpc
from stats import p99

from pausable.cli.launch import WorkerProcess
from pausable.config import EXAMPLES_MODULE
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

ITEMS, ITEM_SECONDS = 10_000, 0.001
CHECKPOINT_EVERY = 50


def _wait_registered(ops: operation_pb2_grpc.OperationServiceStub, spawned: float, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 60
    while not any(
        w.name == "demo.long" and w.register_time.ToNanoseconds() / 1e9 > spawned
        for w in ops.ListWorkflows(pb.ListWorkflowsRequest()).workflows
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"the demo worker did not register; see {worker.log_path}")
        time.sleep(0.1)


def _first(ops: operation_pb2_grpc.OperationServiceStub, operation_id: str, after_seq: int, wanted: object) -> pb.OperationEvent:
    for response in ops.Watch(pb.WatchRequest(operation_id=operation_id, after_seq=after_seq), timeout=60):
        event = response.event
        if wanted(event):  # type: ignore[operator]
            return event
    raise RuntimeError(f"operation {operation_id} ended before the awaited event")


def measure_inner_pause(target: str, broker_url: str, folder: Path, samples: int) -> dict[str, float]:
    spawned = time.time()
    worker = WorkerProcess(target, broker_url, folder / f"inner-worker-{uuid.uuid4().hex[:6]}.log", [EXAMPLES_MODULE]).start()
    latencies: list[float] = []
    try:
        with grpc.insecure_channel(target) as channel:
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            _wait_registered(ops, spawned, worker)
            params = {"items": ITEMS, "item_seconds": ITEM_SECONDS, "checkpoint_every": CHECKPOINT_EVERY}
            value = pb.StartOperationRequest(workflow="demo.long").input
            value.struct_value.update(params)
            for _ in range(samples):
                started = ops.StartOperation(pb.StartOperationRequest(workflow="demo.long", input=value)).operation
                _first(ops, started.id, 0, lambda e: e.type == pb.EVENT_TYPE_PROGRESS)
                time.sleep(random.uniform(0.0, 0.2))
                sent = time.perf_counter()
                reply = ops.Pause(pb.PauseRequest(operation_id=started.id, request_id=uuid.uuid4().hex)).operation
                paused = _first(ops, started.id, reply.last_seq, lambda e: e.operation.state in (pb.OPERATION_STATE_PAUSED,))
                latencies.append((time.perf_counter() - sent) * 1000)
                if "within step" not in paused.message:
                    raise RuntimeError(f"operation {started.id} did not pause within its step: {paused.message}")
                ops.Cancel(pb.CancelRequest(operation_id=started.id, request_id=uuid.uuid4().hex))
    finally:
        worker.stop()
    return {
        "inner_pause_latency_p50_ms": statistics.median(latencies),
        "inner_pause_latency_p99_ms": p99(latencies),
    }
