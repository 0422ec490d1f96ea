"""Fan-out: one event to many Watch streams, the daemon against a bare grpc.aio server (bench/baseline.py).

Both sides get the same load in interleaved passes: `watchers` streams
spread over client channels of their own (STREAMS_PER_CHANNEL streams per
HTTP/2 connection), and events sent by a separate channel on a fixed
schedule (`interval` seconds apart, the same on both sides). The daemon's
events are ReportProgress calls on a running operation whose chain no
worker runs; the baseline's are as large (bench/baseline.py pads them).

A delivery's delay is its arrival at a stream minus the event's own time
(the daemon's transaction; the baseline's broadcast), so the p99 is over
watchers × events deliveries. The bench's one client process receives
every delivery of both sides: at 1,000 deliveries per event its own
reading is part of both sides' delays (the same part).

Memory is each server's RSS with the streams
open, after the events; the bare server's is the baseline.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from stats import p99

from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

STREAMS_PER_CHANNEL = 100
# Streams are opened this many at a time, each wave live before the next: a grpc.aio server given thousands of
# new calls at once cancels those its loop has not taken up in time (gRPC core's pending-request limits; the bare
# server lost 2-6k of 10,000 streams opened at once, CANCELLED).
OPENING_WAVE = 1000
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own, not shared with other channels


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024


@dataclass
class Side:
    """How to drive one server: where it listens, its pid, how to send event `index` (`index == last`: the one that
    ends every stream), what a stream asks for, and whether `subscribed` streams are all live."""

    target: str
    pid: int
    emit: Callable[[int, bool], Awaitable[object]]
    request: pb.WatchRequest
    all_subscribed: Callable[[int, int], Awaitable[bool]]  # (streams seen live, streams opened)


@dataclass
class Deliveries:
    """What the streams of one pass received: delays (s) of live events, and how many streams saw their replayed one."""

    delays: list[float] = field(default_factory=list)
    subscribed: int = 0


async def drive(
    side: Side, watchers: int, events: int, interval: float, watch: Callable[[int, Deliveries], Awaitable[None]]
) -> tuple[list[float], float]:
    """Opens `watchers` streams (`watch(index, deliveries)`, in waves, each live before the next), sends `events`
    events on schedule, reads the server's RSS, sends the one that ends every stream; the delays and the RSS (MB)."""
    received = Deliveries()
    tasks: list[asyncio.Task[None]] = []
    deadline = time.monotonic() + 60 + watchers / 100
    while len(tasks) < watchers:
        wave = range(len(tasks), min(len(tasks) + OPENING_WAVE, watchers))
        tasks += [asyncio.create_task(watch(i, received)) for i in wave]
        while not await side.all_subscribed(received.subscribed, len(tasks)):
            if time.monotonic() > deadline or any(task.done() for task in tasks):
                raise TimeoutError(f"{received.subscribed} of {watchers} watchers subscribed to {side.target}")
            await asyncio.sleep(0.05)
    began = time.monotonic()
    for index in range(events):
        await asyncio.sleep(max(began + index * interval - time.monotonic(), 0.0))
        await side.emit(index, False)
    await asyncio.sleep(max(began + events * interval - time.monotonic(), 0.0))
    memory = rss_mb(side.pid)
    await side.emit(events, True)
    await asyncio.wait_for(asyncio.gather(*tasks), 120 + watchers / 50)
    if len(received.delays) != watchers * events:
        raise RuntimeError(f"{len(received.delays)} deliveries of {watchers * events}")
    return received.delays, memory


async def fanout_pass(side: Side, watchers: int, events: int, interval: float) -> tuple[list[float], float]:
    """Delivery delays (s) of `events` PROGRESS events to `watchers` Watch streams, and the server's RSS (MB) after them."""
    channels = [
        grpc.aio.insecure_channel(side.target, options=CHANNEL_OPTIONS) for _ in range(math.ceil(watchers / STREAMS_PER_CHANNEL))
    ]
    stubs = [operation_pb2_grpc.OperationServiceStub(channel) for channel in channels]

    async def watch(index: int, received: Deliveries) -> None:
        async for response in stubs[index // STREAMS_PER_CHANNEL].Watch(side.request):
            arrived = time.time()
            event = response.event
            if event.seq <= side.request.after_seq + 1 and side.request.after_seq:
                received.subscribed += 1  # the replayed event before the live ones
            elif event.type == pb.EVENT_TYPE_PROGRESS:
                received.delays.append(arrived - event.time.ToNanoseconds() / 1e9)
            if event.type in (pb.EVENT_TYPE_SUCCEEDED, pb.EVENT_TYPE_CANCELLED):
                return

    try:
        return await drive(side, watchers, events, interval, watch)
    finally:
        for channel in channels:
            await channel.close(grace=None)


async def baseline_side(target: str, pid: int, watchers: int, padding: str, emitter: grpc.aio.Channel) -> Side:
    stub = operation_pb2_grpc.OperationServiceStub(emitter)

    async def emit(_index: int, last: bool) -> None:
        await stub.Cancel(pb.CancelRequest(request_id=("last" if last else "") + padding))

    async def all_subscribed(_seen: int, opened: int) -> bool:
        return len((await stub.ListWorkflows(pb.ListWorkflowsRequest())).workflows) >= opened

    return Side(target, pid, emit, pb.WatchRequest(), all_subscribed)


async def pausable_side(target: str, pid: int, watchers: int, operation_id: str, emitter: grpc.aio.Channel) -> Side:
    """Streams of one running operation, from after its first progress event (replayed: a stream is live after it)."""
    ops = operation_pb2_grpc.OperationServiceStub(emitter)
    workers = worker_pb2_grpc.WorkerServiceStub(emitter)
    await workers.ReportProgress(worker_pb2.ReportProgressRequest(operation_id=operation_id, step=0, fraction=0.0))
    last_seq = (await ops.GetOperation(pb.GetOperationRequest(operation_id=operation_id))).operation.last_seq

    async def emit(index: int, last: bool) -> None:
        if last:
            await ops.Cancel(pb.CancelRequest(operation_id=operation_id))
            await workers.Checkpoint(worker_pb2.CheckpointRequest(operation_id=operation_id, step=0, result_json="0"))
        else:
            await workers.ReportProgress(
                worker_pb2.ReportProgressRequest(operation_id=operation_id, step=0, fraction=(index + 1) / 1000)
            )

    async def all_subscribed(seen: int, opened: int) -> bool:
        return seen >= opened

    return Side(target, pid, emit, pb.WatchRequest(operation_id=operation_id, after_seq=last_seq - 1), all_subscribed)


def measure_fanout(
    daemon: tuple[str, int],
    baseline: tuple[str, int],
    new_operation: Callable[[], str],
    watchers: int,
    events: int,
    interval: float,
    passes: int,
    prefix: str = "fanout",
) -> dict[str, float]:
    """`passes` passes per side, alternating; the p99 ratio is the median of the pass pairs' ratios."""

    async def run() -> dict[str, float]:
        ours: list[list[float]] = []
        theirs: list[list[float]] = []
        memory: dict[str, list[float]] = {"pausable": [], "baseline": []}
        async with grpc.aio.insecure_channel(daemon[0]) as emitter, grpc.aio.insecure_channel(baseline[0]) as bare:
            sample_id = new_operation()
            sample = await operation_pb2_grpc.OperationServiceStub(emitter).GetOperation(
                pb.GetOperationRequest(operation_id=sample_id)
            )
            padding = "x" * max(pb.WatchResponse(event=pb.OperationEvent(operation=sample.operation)).ByteSize() - 40, 0)
            for index in range(passes):
                for name in ("baseline", "pausable") if index % 2 == 0 else ("pausable", "baseline"):
                    if name == "pausable":
                        side = await pausable_side(*daemon, watchers, new_operation(), emitter)
                    else:
                        side = await baseline_side(*baseline, watchers, padding, bare)
                    delays, rss = await fanout_pass(side, watchers, events, interval)
                    (ours if name == "pausable" else theirs).append(delays)
                    memory[name].append(rss)
        pooled_ours = [d for delays in ours for d in delays]
        pooled_theirs = [d for delays in theirs for d in delays]
        return {
            f"{prefix}_p50_ms": statistics.median(pooled_ours) * 1000,
            f"{prefix}_p99_ms": p99(pooled_ours) * 1000,
            f"{prefix}_baseline_p50_ms": statistics.median(pooled_theirs) * 1000,
            f"{prefix}_baseline_p99_ms": p99(pooled_theirs) * 1000,
            f"{prefix}_p99_ratio": statistics.median(p99(a) / p99(b) for a, b in zip(ours, theirs, strict=True)),
            f"{prefix}_deliveries": float(len(pooled_ours)),
            f"{prefix}_rss_mb": statistics.median(memory["pausable"]),
            f"{prefix}_baseline_rss_mb": statistics.median(memory["baseline"]),
            f"{prefix}_rss_ratio": statistics.median(memory["pausable"]) / statistics.median(memory["baseline"]),
        }

    return asyncio.run(run())
