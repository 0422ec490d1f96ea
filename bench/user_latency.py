"""The latencies users feel, on a real `pausable worker` with its default prefork pool (bench/latency_tasks.py).

- pause_to_paused: from a Pause call's return to the PAUSED event, with 50 ms
  steps, one operation at a time (idle), paused at random moments;
- pause_all_300: one burst of Pause calls for 300 running operations of
  50 ms steps (most of their next steps wait on the broker) until all are
  PAUSED, and each Pause's return → PAUSED under that load;
- watch_delay: a step's end → a Watch stream delivers its event, against
  Celery's own `AsyncResult.get()` learning of the same 10 ms task's end on
  the same worker, in interleaved rounds.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import redis
from celery import Celery

from pausable.cli.launch import WorkerProcess
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

WORKFLOWS = {"latency.sleep50", "latency.sleep10"}
STEP_SECONDS = 0.05
CYCLES_PER_OPERATION = 10  # pause/resume cycles of one 40-step operation, then a fresh one
TERMINAL = {pb.OPERATION_STATE_SUCCEEDED, pb.OPERATION_STATE_FAILED, pb.OPERATION_STATE_CANCELLED}


def p99(values: list[float]) -> float:
    """The nearest-rank 99th percentile (as bench/run.py)."""
    return sorted(values)[math.ceil(0.99 * len(values)) - 1]


@contextmanager
def default_worker(target: str, broker_url: str, folder: Path) -> Iterator[WorkerProcess]:
    """A `pausable worker` with the default pool (prefork, 2 processes), ready when it has registered its workflows."""
    spawned = time.time()
    worker = WorkerProcess(target, broker_url, folder / f"latency-worker-{uuid.uuid4().hex[:6]}.log", ["latency_tasks"]).start()
    try:
        with grpc.insecure_channel(target) as channel:
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            deadline = time.monotonic() + 60
            while not WORKFLOWS <= {
                w.name
                for w in ops.ListWorkflows(pb.ListWorkflowsRequest()).workflows
                if w.register_time.ToNanoseconds() / 1e9 > spawned
            }:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the latency worker did not register; see {worker.log_path}")
                time.sleep(0.1)
        yield worker
    finally:
        worker.stop()


# -- pause latency, idle and under load -------------------------------------------------


def pause_samples(target: str, count: int, chooser: random.Random) -> list[float]:
    """`count` latencies (ms) from a Pause's return to the PAUSED event, each at a random moment of a run."""
    latencies: list[float] = []
    with grpc.insecure_channel(target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        while len(latencies) < count:
            op = ops.StartOperation(pb.StartOperationRequest(workflow="latency.sleep50")).operation
            stream = ops.Watch(pb.WatchRequest(operation_id=op.id, after_seq=op.last_seq))
            for _cycle in range(CYCLES_PER_OPERATION):
                if len(latencies) >= count:
                    break
                time.sleep(chooser.uniform(STEP_SECONDS * 1.2, STEP_SECONDS * 3.2))
                reply = ops.Pause(pb.PauseRequest(operation_id=op.id)).operation
                returned = time.monotonic()
                if reply.state != pb.OPERATION_STATE_PAUSE_REQUESTED:
                    break
                event = next(
                    r.event for r in stream if r.event.type == pb.EVENT_TYPE_PAUSED or r.event.operation.state in TERMINAL
                )
                if event.type != pb.EVENT_TYPE_PAUSED:
                    break
                latencies.append(max(time.monotonic() - returned, 0.0) * 1000)
                ops.Resume(pb.ResumeRequest(operation_id=op.id))
            stream.cancel()
            try:
                ops.Cancel(pb.CancelRequest(operation_id=op.id))
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.FAILED_PRECONDITION:  # it had finished
                    raise
    return latencies


def pause_all(target: str, count: int) -> tuple[float, list[float]]:
    """Seconds from the first of `count` concurrent Pause calls to the last PAUSED, and each Pause's return → PAUSED (ms)."""

    async def run() -> tuple[float, list[float]]:
        async with grpc.aio.insecure_channel(target) as channel:
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            started = await asyncio.gather(
                *(ops.StartOperation(pb.StartOperationRequest(workflow="latency.sleep50")) for _ in range(count))
            )
            operations = [reply.operation for reply in started]
            paused_at: dict[str, float] = {}
            everyone = asyncio.Event()

            async def watch(op: pb.Operation) -> None:
                async for response in ops.Watch(pb.WatchRequest(operation_id=op.id, after_seq=op.last_seq)):
                    if response.event.type == pb.EVENT_TYPE_PAUSED:
                        paused_at[op.id] = time.monotonic()
                        if len(paused_at) == count:
                            everyone.set()
                    if response.event.operation.state in TERMINAL:
                        return

            watchers = [asyncio.create_task(watch(op)) for op in operations]
            await asyncio.sleep(1.0)  # the worker runs their steps; the next steps of most wait on the broker
            returned: dict[str, float] = {}

            async def pause(op: pb.Operation) -> None:
                await ops.Pause(pb.PauseRequest(operation_id=op.id))
                returned[op.id] = time.monotonic()

            begun = time.monotonic()
            await asyncio.gather(*(pause(op) for op in operations))
            await asyncio.wait_for(everyone.wait(), 300)
            took = max(paused_at.values()) - begun
            await asyncio.gather(*(ops.Cancel(pb.CancelRequest(operation_id=op.id)) for op in operations))
            await asyncio.wait_for(asyncio.gather(*watchers), 60)
            return took, [max(paused_at[op.id] - returned[op.id], 0.0) * 1000 for op in operations]

    return asyncio.run(run())


def measure_pause_load(
    target: str, broker_url: str, folder: Path, samples: int, rounds: int, count: int = 300
) -> dict[str, float]:
    """Interleaved rounds: samples/rounds idle pauses, then one burst of `count` Pause calls."""
    chooser = random.Random(12)
    idle: list[float] = []
    loaded: list[float] = []
    bursts: list[float] = []
    with default_worker(target, broker_url, folder):
        pause_samples(target, 3, chooser)  # warm-up
        for index in range(rounds):
            idle += pause_samples(target, samples // rounds + (1 if index < samples % rounds else 0), chooser)
            took, latencies = pause_all(target, count)
            bursts.append(took)
            loaded += latencies
    return {
        "pause_to_paused_p50_ms": statistics.median(idle),
        "pause_to_paused_p99_ms": p99(idle),
        "pause_to_paused_samples": float(len(idle)),
        f"pause_all_{count}_s": statistics.median(bursts),
        f"pause_all_{count}_max_s": max(bursts),
        f"pause_under_{count}_p50_ms": statistics.median(loaded),
        f"pause_under_{count}_p99_ms": p99(loaded),
    }


# -- watch delay against Celery's AsyncResult.get() ----------------------------------------


def pausable_round(ops: operation_pb2_grpc.OperationServiceStub, broker: redis.Redis) -> tuple[list[float], list[float]]:
    """One 40-step operation of 10 ms steps: for each step, its end → its event (STEP_COMPLETED, SUCCEEDED last) on a
    Watch (ms); and its end → the event's time (when the daemon's transaction began), the worker's share of that."""
    op = ops.StartOperation(pb.StartOperationRequest(workflow="latency.sleep10")).operation
    arrivals: dict[int, tuple[float, float]] = {}
    for response in ops.Watch(pb.WatchRequest(operation_id=op.id, after_seq=op.last_seq)):
        now = time.time()
        event = response.event
        stamped = event.time.ToNanoseconds() / 1e9
        if event.type == pb.EVENT_TYPE_STEP_COMPLETED:
            arrivals[event.operation.current_step - 1] = now, stamped
        elif event.type == pb.EVENT_TYPE_SUCCEEDED:
            arrivals[event.operation.total_steps - 1] = now, stamped
    ended = [float(value) for value in broker.lrange(f"latency:ended:{op.id}", 0, -1)]
    broker.delete(f"latency:ended:{op.id}")
    steps = [step for step in sorted(arrivals) if step < len(ended)]
    return [(arrivals[s][0] - ended[s]) * 1000 for s in steps], [(arrivals[s][1] - ended[s]) * 1000 for s in steps]


def celery_round(app: Celery, steps: int) -> list[float]:
    """The same step `steps` times as a plain task: its end → `AsyncResult.get()` returns (ms)."""
    delays = []
    for _ in range(steps):
        ended = app.send_task("latency.celery_sleep10", args=[uuid.uuid4().hex], queue="pausable.latency.sleep10").get(timeout=60)
        delays.append((time.time() - float(ended)) * 1000)
    return delays


def measure_watch_delay(target: str, broker_url: str, folder: Path, rounds: int) -> dict[str, float]:
    """Rounds of 40 steps per side, alternating; the ratio is the median of the rounds' p50 ratios."""
    app = Celery("latency-bench", broker=broker_url, backend=broker_url, set_as_current=False)
    broker = redis.Redis.from_url(broker_url)
    pausable: list[float] = []
    to_daemon: list[float] = []
    celery: list[float] = []
    ratios: list[float] = []
    with default_worker(target, broker_url, folder), grpc.insecure_channel(target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        pausable_round(ops, broker)  # warm-up
        celery_round(app, 40)
        for _ in range(rounds):
            (ours, reached), theirs = pausable_round(ops, broker), celery_round(app, 40)
            pausable += ours
            to_daemon += reached
            celery += theirs
            ratios.append(statistics.median(ours) / statistics.median(theirs))
    broker.delete(*broker.keys("latency:celery:*") or ["latency:none"])
    app.close()
    return {
        "watch_delay_p50_ms": statistics.median(pausable),
        "watch_delay_p99_ms": p99(pausable),
        "watch_delay_to_daemon_p50_ms": statistics.median(to_daemon),
        "celery_get_delay_p50_ms": statistics.median(celery),
        "celery_get_delay_p99_ms": p99(celery),
        "watch_delay_samples": float(len(pausable)),
        "watch_delay_ratio": statistics.median(ratios),
        "watch_delay_p99_ratio": p99(pausable) / p99(celery),
    }
