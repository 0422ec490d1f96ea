"""Worker throughput at saturation: pausable steps against the same no-op tasks as plain Celery chains.

A `pausable worker` of its own, started as users start it (default prefork
pool, 2 processes), consumes bench/throughput_tasks.py's workflow queue. Each
repetition runs one batch per side, in alternating order:

- pausable: `operations` operations of 10 no-op steps, all started at once;
  the rate is of the steps the daemon recorded (the times of their
  STEP_COMPLETED and SUCCEEDED events, replayed once all have ended);
- plain Celery: `operations` chains of the same 10 no-op tasks, built before
  they are sent, on the same queue and worker; the rate is of the tasks the
  worker logged as succeeded.

Both rates are taken between the 20% and 90% quantiles of their times
(stats.window_rate): the worker is saturated there, past the ramp while the
batch is being started and before its last chains drain. Nothing polls the
daemon or the worker during the batch beyond one ListOperations (pausable)
or LLEN (plain) every quarter second to know when it has ended.

On a shared machine the rates move with the other load; the CPU seconds
each side's processes spend per step (the worker and its pool, Redis, and
for pausable the daemon) do not, and tell what the rates would be on cores
of their own.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import grpc
import redis
from celery import Celery, chain
from cpu import tree_cpu_seconds
from stats import window_rate
from throughput_tasks import QUEUE, STEPS, WORKFLOW

from pausable.cli.launch import WorkerProcess, wait_registered
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

SUCCEEDED_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/[^\]]*\] Task (throughput\.\w+)\[[^\]]+\] succeeded", re.MULTILINE
)
RECORDED = {pb.EVENT_TYPE_STEP_COMPLETED, pb.EVENT_TYPE_SUCCEEDED}
POLL_SECONDS = 0.25


def succeeded_times(log: Path, offset: int, names: set[str]) -> list[float]:
    """The times of the worker's "Task <name>[id] succeeded" lines written after byte `offset` of its log."""
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    return [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for stamp, name in SUCCEEDED_LINE.findall(text)
        if name in names
    ]


def logged(log: Path, offset: int, names: set[str], count: int, timeout: float = 30.0) -> list[float]:
    """`succeeded_times`, once the worker has written `count` of those lines (a line follows its task's end)."""
    deadline = time.monotonic() + timeout
    while len(times := succeeded_times(log, offset, names)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker logged {len(times)} of {count} tasks; see {log}")
        time.sleep(0.05)
    return times


def pausable_batch(target: str, operations: int, ended: Callable[[], object]) -> list[float]:
    """Start `operations` operations at once; when all have ended (then `ended()` is called), the times at which the
    daemon recorded their steps."""

    async def run() -> list[float]:
        batch = {"batch": uuid.uuid4().hex}
        async with grpc.aio.insecure_channel(target) as channel:
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            started = await asyncio.gather(
                *(ops.StartOperation(pb.StartOperationRequest(workflow=WORKFLOW, labels=batch)) for _ in range(operations))
            )
            active = pb.ListOperationsRequest(
                workflow=WORKFLOW,
                labels=batch,
                states=[pb.OPERATION_STATE_PENDING, pb.OPERATION_STATE_RUNNING],
                page_size=1,
            )
            while (await ops.ListOperations(active)).operations:
                await asyncio.sleep(POLL_SECONDS)
            ended()
            times: list[float] = []

            async def replay(operation_id: str) -> None:
                async for response in ops.Watch(pb.WatchRequest(operation_id=operation_id)):
                    event = response.event
                    if event.type in RECORDED:
                        times.append(event.time.ToNanoseconds() / 1e9)
                    if event.operation.state in (pb.OPERATION_STATE_FAILED, pb.OPERATION_STATE_CANCELLED):
                        raise RuntimeError(f"operation {operation_id} ended {pb.OperationState.Name(event.operation.state)}")

            await asyncio.gather(*(replay(reply.operation.id) for reply in started))
        if len(times) != operations * STEPS:
            raise RuntimeError(f"the daemon recorded {len(times)} steps of {operations * STEPS}")
        return times

    return asyncio.run(run())


def plain_batch(app: Celery, broker: redis.Redis, operations: int) -> None:
    """Send `operations` plain chains of the same no-op tasks (built first) and wait until all have ended."""
    batch = uuid.uuid4().hex
    chains = [
        chain(
            app.signature("throughput.plain", args=(0,), queue=QUEUE),
            *(app.signature("throughput.plain", queue=QUEUE) for _ in range(STEPS - 2)),
            app.signature("throughput.plain_last", kwargs={"batch": batch}, queue=QUEUE),
        )
        for _ in range(operations)
    ]
    for plain in chains:
        plain.apply_async()
    done = f"throughput:done:{batch}"
    while broker.llen(done) < operations:
        time.sleep(POLL_SECONDS)
    broker.delete(done)


class CpuMeter:
    """CPU seconds spent by a set of process trees between `start()` and `stop()`, per process name."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.begun: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        self.begun = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.spent = {name: tree_cpu_seconds(pid) - self.begun[name] for name, pid in self.pids.items()}


def measure_worker_throughput(
    target: str, broker_url: str, folder: Path, operations: int, repeats: int, daemon_pid: int, redis_pid: int
) -> dict[str, float]:
    """Interleaved repetitions of one batch per side; the ratios are the medians of the repetitions' ratios."""
    app = Celery("throughput-bench", broker=broker_url, set_as_current=False)
    broker = redis.Redis.from_url(broker_url)
    log = folder / f"throughput-worker-{uuid.uuid4().hex[:6]}.log"
    steps = operations * STEPS
    recorded: list[float] = []
    executed: list[float] = []
    plain: list[float] = []
    cpu: dict[str, list[dict[str, float]]] = {"pausable": [], "plain": []}
    since = time.time()
    worker = WorkerProcess(target, broker_url, log, ["throughput_tasks"]).start()
    try:
        wait_registered(target, {WORKFLOW}, since, process=worker.process)
        assert worker.process is not None
        meter = CpuMeter({"worker": worker.process.pid, "daemon": daemon_pid, "redis": redis_pid})
        pausable_batch(target, 20, lambda: None)  # warm-up: connections, imports, the daemon's prepared statements
        plain_batch(app, broker, 20)
        for index in range(repeats):
            for side in ("pausable", "plain") if index % 2 == 0 else ("plain", "pausable"):
                offset = log.stat().st_size
                meter.start()
                if side == "pausable":
                    recorded.append(window_rate(pausable_batch(target, operations, meter.stop)))
                    executed.append(window_rate(logged(log, offset, {"throughput.noop"}, steps)))
                else:
                    plain_batch(app, broker, operations)
                    meter.stop()
                    plain.append(window_rate(logged(log, offset, {"throughput.plain", "throughput.plain_last"}, steps)))
                cpu[side].append({name: seconds / steps * 1000 for name, seconds in meter.spent.items()})
    finally:
        worker.stop()
        app.close()

    def cpu_ms(side: str, *names: str) -> list[float]:
        return [sum(spent[name] for name in names) for spent in cpu[side]]

    ours, theirs = cpu_ms("pausable", "worker", "daemon", "redis"), cpu_ms("plain", "worker", "redis")
    ours_worker, theirs_worker = cpu_ms("pausable", "worker"), cpu_ms("plain", "worker")
    return {
        "worker_steps_per_s": statistics.median(recorded),
        "worker_executed_steps_per_s": statistics.median(executed),
        "plain_celery_steps_per_s": statistics.median(plain),
        "worker_throughput_ratio": statistics.median(a / b for a, b in zip(recorded, plain, strict=True)),
        "worker_cpu_ms_per_step": statistics.median(cpu_ms("pausable", "worker")),
        "worker_daemon_cpu_ms_per_step": statistics.median(cpu_ms("pausable", "daemon")),
        "worker_redis_cpu_ms_per_step": statistics.median(cpu_ms("pausable", "redis")),
        "plain_worker_cpu_ms_per_step": statistics.median(cpu_ms("plain", "worker")),
        "plain_redis_cpu_ms_per_step": statistics.median(cpu_ms("plain", "redis")),
        "worker_cpu_ratio": statistics.median(b / a for a, b in zip(ours_worker, theirs_worker, strict=True)),
        "system_cpu_ratio": statistics.median(b / a for a, b in zip(ours, theirs, strict=True)),
    }
