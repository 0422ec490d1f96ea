"""A bulk pause: 1,000 running operations (40 steps of 50 ms, bench/latency_tasks.py, on a `pausable worker` with its
default pool) paused by one BulkPause (selector: their label, state RUNNING).

- bulk_pause_1000_s: from the BulkPause call to the last of them PAUSED (seen on one WatchEvents stream filtered
  by their label). Most of their next steps wait on the broker; each is dropped as the worker takes it (it sees
  the stop flag), so this is mostly the worker draining its queue;
- bulk_pause_1000_processed_s: from the call to the bulk action DONE (every operation PAUSE_REQUESTED), the
  daemon's share: batches of 100 operations, one transaction each.

The median over `rounds`; each round cancels its operations with a BulkCancel afterwards.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

import grpc
from user_latency import default_worker

from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

COUNT = 1000


async def one_round(target: str, count: int) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        labels = {"bench": uuid.uuid4().hex[:16]}
        for start in range(0, count, 200):
            await asyncio.gather(
                *(
                    ops.StartOperation(pb.StartOperationRequest(workflow="latency.sleep50", labels=labels))
                    for _ in range(start, min(start + 200, count))
                )
            )
        paused: set[str] = set()
        everyone = asyncio.Event()
        stream = ops.WatchEvents(pb.WatchEventsRequest(labels=labels))

        async def watch() -> None:
            async for response in stream:
                if response.event.type == pb.EVENT_TYPE_PAUSED:
                    paused.add(response.event.operation_id)
                    if len(paused) == count:
                        everyone.set()

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(1.0)  # the worker runs their steps; the next steps of most wait on the broker
        selector = pb.OperationSelector(labels=labels, states=[pb.OPERATION_STATE_RUNNING])
        begun = time.monotonic()
        action = (await ops.BulkPause(pb.BulkPauseRequest(selector=selector, reason="bench"))).bulk_action
        processed = 0.0
        async for update in ops.WatchBulkAction(pb.WatchBulkActionRequest(bulk_action_id=action.id)):
            if update.bulk_action.state == pb.BULK_ACTION_STATE_DONE:
                processed = time.monotonic() - begun
                if update.bulk_action.done != count:
                    raise SystemExit(f"the bulk pause changed {update.bulk_action.done} of {count} operations")
        await asyncio.wait_for(everyone.wait(), 300)
        took = time.monotonic() - begun
        stream.cancel()
        watcher.cancel()
        cancel = (await ops.BulkCancel(pb.BulkCancelRequest(selector=pb.OperationSelector(labels=labels)))).bulk_action
        async for _update in ops.WatchBulkAction(pb.WatchBulkActionRequest(bulk_action_id=cancel.id)):
            pass
        return took, processed


def measure_bulk_pause(target: str, broker_url: str, folder: Path, rounds: int, count: int = COUNT) -> dict[str, float]:
    took: list[float] = []
    processed: list[float] = []
    with default_worker(target, broker_url, folder):
        for _ in range(rounds):
            all_paused, done = asyncio.run(one_round(target, count))
            took.append(all_paused)
            processed.append(done)
    return {
        f"bulk_pause_{count}_s": statistics.median(took),
        f"bulk_pause_{count}_max_s": max(took),
        f"bulk_pause_{count}_processed_s": statistics.median(processed),
    }
