"""The daemon's own rates against no-op unary calls to a trivial grpc.aio server (bench/baseline.py), in one run.

The daemon's side is measured alone: its operations belong to "void"
workflows whose chains go to a queue no worker reads (deleted as they
arrive), and the bench sends the calls a worker would send.

- checkpoint: the synchronous Checkpoint as a worker sends it at a stop
  flag or after a last step (a fresh `attempt_id`, the step's attempt,
  not `continued`: the daemon decides and updates the stop flag), from 100
  running operations at once;
- start and resume: StartOperation and Resume of paused operations, the
  same number of each at the same concurrency, a start batch then a resume
  batch of the operations it started (paused in between, untimed);
- Postgres: the checkpoint rate of a daemon of its own on a PostgreSQL
  cluster with fsync and synchronous_commit on, as in production.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import redis

from pausable.cli.launch import DaemonProcess
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

VOID_QUEUE = "bench-void"
CONCURRENCY = 64


def register_void_workflow(target: str, name: str, steps: int) -> None:
    """A workflow whose chains go to a queue no worker reads: only the daemon's side is measured."""
    plan = [{"task": "bench.noop", "args": [], "kwargs": {}, "options": {"queue": VOID_QUEUE}} for _ in range(steps)]
    with grpc.insecure_channel(target) as channel:
        worker_pb2_grpc.WorkerServiceStub(channel).RegisterWorkflows(
            worker_pb2.RegisterWorkflowsRequest(workflows=[pb.Workflow(name=name, plan_json=json.dumps(plan))])
        )


def void_operations(target: str, broker_url: str, name: str, count: int) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        ids = [ops.StartOperation(pb.StartOperationRequest(workflow=name)).operation.id for _ in range(count)]
    redis.Redis.from_url(broker_url).delete(VOID_QUEUE)
    return ids


async def rate(calls: Callable[[int], Awaitable[object]], concurrency: int, seconds: float) -> float:
    """Calls/s of `concurrency` loops, each awaiting `calls(loop_index)` back to back."""
    done = 0
    deadline = time.monotonic() + seconds

    async def loop(index: int) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await calls(index)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    return done / (time.monotonic() - started)


async def batch_rate(calls: Callable[[int], Awaitable[object]], count: int, concurrency: int) -> float:
    """Calls/s of `calls(0)` … `calls(count - 1)`, `concurrency` of them on their way at any time."""
    pending = iter(range(count))

    async def loop() -> None:
        for index in pending:
            await calls(index)

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return count / (time.monotonic() - started)


def noop_rate(baseline_target: str, seconds: float) -> float:
    async def run() -> float:
        async with grpc.aio.insecure_channel(baseline_target) as channel:
            stub = operation_pb2_grpc.OperationServiceStub(channel)
            return await rate(lambda _i: stub.GetOperation(pb.GetOperationRequest()), CONCURRENCY, seconds)

    return asyncio.run(run())


def sync_checkpoint(operation_id: str, step: int) -> worker_pb2.CheckpointRequest:
    """The Checkpoint a worker sends synchronously (pausable.workers.link.DaemonLink.checkpoint)."""
    return worker_pb2.CheckpointRequest(
        operation_id=operation_id, step=step, result_json=str(step), attempt_id=uuid.uuid4().hex, attempt=1
    )


def checkpoint_rate(target: str, broker_url: str, seconds: float) -> float:
    """Synchronous Checkpoints/s from 100 running operations (of 400 steps), one call on its way per operation."""
    ids = void_operations(target, broker_url, "bench.void", 100)

    async def run() -> float:
        steps = dict.fromkeys(range(len(ids)), 0)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)

            async def checkpoint(index: int) -> None:
                step = steps[index]
                reply = await stub.Checkpoint(sync_checkpoint(ids[index], step))
                if reply.decision != worker_pb2.DECISION_CONTINUE:
                    raise RuntimeError(f"checkpoint of a running operation answered {worker_pb2.Decision.Name(reply.decision)}")
                steps[index] = step + 1

            return await rate(checkpoint, len(ids), seconds)

    return asyncio.run(run())


def start_and_resume_rates(target: str, broker_url: str, count: int) -> tuple[float, float]:
    """Starts/s of `count` operations, then Resumes/s of the same operations once paused, both at CONCURRENCY."""

    async def run() -> tuple[float, float]:
        ids: list[str] = [""] * count
        async with grpc.aio.insecure_channel(target) as channel:
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            workers = worker_pb2_grpc.WorkerServiceStub(channel)

            async def start(index: int) -> None:
                ids[index] = (await ops.StartOperation(pb.StartOperationRequest(workflow="bench.void5"))).operation.id

            async def pause(index: int) -> None:
                await ops.Pause(pb.PauseRequest(operation_id=ids[index]))
                reply = await workers.Checkpoint(sync_checkpoint(ids[index], 0))
                if reply.state != pb.OPERATION_STATE_PAUSED:
                    raise RuntimeError(f"a paused void operation is {pb.OperationState.Name(reply.state)}")

            async def resume(index: int) -> None:
                await ops.Resume(pb.ResumeRequest(operation_id=ids[index]))

            starts = await batch_rate(start, count, CONCURRENCY)
            await batch_rate(pause, count, CONCURRENCY)
            resumes = await batch_rate(resume, count, CONCURRENCY)
        return starts, resumes

    try:
        return asyncio.run(run())
    finally:
        redis.Redis.from_url(broker_url).delete(VOID_QUEUE)


def measure_throughput(
    target: str, baseline_target: str, broker_url: str, repeats: int, seconds: float, count: int
) -> dict[str, float]:
    """Interleaved repetitions of the no-op rate, the checkpoint rate and a start-then-resume batch."""
    noop, checkpoints, starts, resumes = [], [], [], []
    for _ in range(repeats):
        noop.append(noop_rate(baseline_target, seconds))
        checkpoints.append(checkpoint_rate(target, broker_url, seconds))
        started, resumed = start_and_resume_rates(target, broker_url, count)
        starts.append(started)
        resumes.append(resumed)
    return {
        "noop_unary_per_s": statistics.median(noop),
        "checkpoints_per_s": statistics.median(checkpoints),
        "starts_per_s": statistics.median(starts),
        "resumes_per_s": statistics.median(resumes),
        "checkpoint_throughput_ratio": statistics.median(c / n for c, n in zip(checkpoints, noop, strict=True)),
        "start_throughput_ratio": statistics.median(s / n for s, n in zip(starts, noop, strict=True)),
        "resume_throughput_ratio": statistics.median(r / s for r, s in zip(resumes, starts, strict=True)),
    }


def check_durable(port: int, user: str) -> None:
    """Refuse to measure a cluster that does not flush its commits to disk."""
    import asyncpg

    async def settings() -> list[str]:
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user=user, database="postgres")
        try:
            return [await connection.fetchval(f"SHOW {name}") for name in ("fsync", "synchronous_commit")]
        finally:
            await connection.close()

    if (found := asyncio.run(settings())) != ["on", "on"]:
        raise RuntimeError(f"fsync and synchronous_commit must be on; the cluster has {found}")


def measure_postgres(baseline_target: str, broker_url: str, folder: Path, repeats: int, seconds: float) -> dict[str, float]:
    """Checkpoints/s of a daemon on PostgreSQL (fsync and synchronous_commit on) over no-op unary calls, interleaved."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.servers import PostgresServer  # test support (tests/support/servers.py), not in the wheel

    noop, checkpoints = [], []
    with PostgresServer(durable=True) as postgres:
        check_durable(postgres.port, postgres.user)
        daemon = DaemonProcess(
            postgres.create_database("bench"),
            broker_url,
            folder / "postgres-daemon.log",
            retention_seconds="0",
            require_step_tokens="false",
            step_lease_seconds="3600",
        ).start()
        try:
            register_void_workflow(daemon.target, "bench.void", 400)
            for _ in range(repeats):
                noop.append(noop_rate(baseline_target, seconds))
                checkpoints.append(checkpoint_rate(daemon.target, broker_url, seconds))
        finally:
            daemon.stop()
    return {
        "postgres_checkpoints_per_s": statistics.median(checkpoints),
        "postgres_checkpoint_ratio": statistics.median(c / n for c, n in zip(checkpoints, noop, strict=True)),
    }
