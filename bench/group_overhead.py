"""The cost of a stage of parallel members: a map stage of no-op members against a `celery.group` of the same no-op
tasks, on the same worker, and how long the daemon takes to join a stage once its last member has ended.

A `pausable worker` of its own, started as users start it (default prefork pool, 2 processes), consumes
bench/group_tasks.py's workflow queue. Each round runs one batch per side, in alternating order:

- pausable: an operation of `group.map_noop` (`make_items` returns `members` ints, then `each(noop)` maps over
  them: one member task per item, dispatched by the daemon, each reporting its result in the background). Its
  time runs from the STAGE_STARTED event's time (the daemon's commit of the stage, before its members are
  published) to the STAGE_COMPLETED event's time (the daemon's commit of the join, once the last member reported):
  what a user waits for. Beside it, the same start to the last member's own end (`..._last_end_...`), the
  plain side's definition of the end;
- plain Celery: a `celery.group` of `members` `group.plain_noop` tasks (built before), sent to the same queue and
  worker; its time runs from just before `apply_async` to the last task's own end.

Every task of both sides ends with one RPUSH of its end time (`time.time()`) to a Redis list of its batch
(bench/group_tasks.py), so the end is the same on both sides and no result backend is needed. While a batch runs,
the bench only polls: GetOperation (pausable) or LLEN (plain) every quarter second; the pausable operation's
events are replayed after it ended. The ratios are the medians of the rounds' ratios. CPU seconds of the worker
(with its pool), the daemon and Redis per member are taken over each batch (from the start to the poll that saw it
end: the replay is left out), as in bench/worker_throughput.py.

Stage join: `joins` operations of the same workflow with 10 members each, one at a time; each gives the time from
its last member's end (the largest time its members pushed) to its STAGE_COMPLETED event's time: p50 and p99.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import redis
from celery import Celery
from celery import group as celery_group
from group_tasks import ENDED, QUEUE, WORKFLOW
from stats import p99
from worker_throughput import CpuMeter

from pausable.cli.launch import WorkerProcess, wait_registered
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

POLL_SECONDS = 0.25
JOIN_MEMBERS = 10
TERMINAL = {pb.OPERATION_STATE_SUCCEEDED, pb.OPERATION_STATE_FAILED, pb.OPERATION_STATE_CANCELLED}


class Stage:
    """One pausable operation of `group.map_noop`, run to its end: its stage's event times and its members' ends."""

    def __init__(
        self,
        ops: operation_pb2_grpc.OperationServiceStub,
        broker: redis.Redis,
        members: int,
        ended: Callable[[], object] = lambda: None,
    ) -> None:
        """Start it, poll until it has ended (then `ended()` is called), then replay its events."""
        request = pb.StartOperationRequest(workflow=WORKFLOW, request_id=uuid.uuid4().hex)
        request.input.struct_value.update({"members": members})
        operation = ops.StartOperation(request).operation
        while operation.state not in TERMINAL:
            time.sleep(POLL_SECONDS)
            operation = ops.GetOperation(pb.GetOperationRequest(operation_id=operation.id)).operation
        ended()
        if operation.state != pb.OPERATION_STATE_SUCCEEDED:
            raise RuntimeError(f"operation {operation.id} ended {pb.OperationState.Name(operation.state)}: {operation.error}")
        times: dict[int, float] = {}
        for response in ops.Watch(pb.WatchRequest(operation_id=operation.id)):
            event = response.event
            if event.type in (pb.EVENT_TYPE_STAGE_STARTED, pb.EVENT_TYPE_STAGE_COMPLETED):
                times.setdefault(event.type, event.time.ToNanoseconds() / 1e9)
        if len(times) != 2:
            raise RuntimeError(f"operation {operation.id} has no STAGE_STARTED and STAGE_COMPLETED events: {times}")
        self.started = times[pb.EVENT_TYPE_STAGE_STARTED]
        self.completed = times[pb.EVENT_TYPE_STAGE_COMPLETED]
        self.last_end = last_end(broker, operation.id, members)


def last_end(broker: redis.Redis, key: str, members: int) -> float:
    """The last end time the batch's `members` tasks pushed (each pushes one), and the list deleted."""
    values = [float(value) for value in broker.lrange(ENDED + key, 0, -1)]
    broker.delete(ENDED + key)
    if len(values) != members:
        raise RuntimeError(f"{len(values)} of {members} tasks of {key} recorded their end")
    return max(values)


def plain_batch(app: Celery, broker: redis.Redis, members: int) -> float:
    """Seconds from sending a group of `members` plain no-op tasks (built before) to the last one's end."""
    token = uuid.uuid4().hex
    batch = celery_group(app.signature("group.plain_noop", args=(item, token), queue=QUEUE) for item in range(members))
    sent = time.time()
    batch.apply_async()
    while broker.llen(ENDED + token) < members:
        time.sleep(POLL_SECONDS)
    return last_end(broker, token, members) - sent


def measure_group_overhead(
    target: str,
    broker_url: str,
    folder: Path,
    members: int,
    rounds: int,
    joins: int,
    daemon_pid: int,
    redis_pid: int,
) -> dict[str, float]:
    app = Celery("group-bench", broker=broker_url, set_as_current=False)
    broker = redis.Redis.from_url(broker_url)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"pausable": [], "last_end": [], "plain": []}
    cpu: dict[str, list[dict[str, float]]] = {"pausable": [], "plain": []}
    joined: list[float] = []
    since = time.time()
    worker = WorkerProcess(target, broker_url, folder / f"group-worker-{uuid.uuid4().hex[:6]}.log", ["group_tasks"]).start()
    try:
        wait_registered(target, {WORKFLOW}, since, process=worker.process)
        assert worker.process is not None
        meter = CpuMeter({"worker": worker.process.pid, "daemon": daemon_pid, "redis": redis_pid})
        with grpc.insecure_channel(target) as channel:
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            Stage(ops, broker, 20)  # warm-up: connections, imports, the daemon's prepared statements
            plain_batch(app, broker, 20)
            for index in range(rounds):
                for side in ("pausable", "plain") if index % 2 == 0 else ("plain", "pausable"):
                    meter.start()
                    if side == "pausable":
                        stage = Stage(ops, broker, members, meter.stop)  # the replay of its events is not counted
                        times["pausable"].append((stage.completed - stage.started) / members * 1000)
                        times["last_end"].append((stage.last_end - stage.started) / members * 1000)
                    else:
                        times["plain"].append(plain_batch(app, broker, members) / members * 1000)
                        meter.stop()
                    cpu[side].append({name: seconds / members * 1000 for name, seconds in meter.spent.items()})
            for _ in range(joins):
                stage = Stage(ops, broker, JOIN_MEMBERS)
                joined.append((stage.completed - stage.last_end) * 1000)
    finally:
        worker.stop()
        app.close()

    def ratio(side: str) -> float:
        return statistics.median(v / p for v, p in zip(times[side], times["plain"], strict=True))

    def cpu_ms(side: str, name: str) -> float:
        return statistics.median(spent[name] for spent in cpu[side])

    return {
        "group_members": float(members),
        "group_celery_ms_per_member": statistics.median(times["plain"]),
        "group_pausable_ms_per_member": statistics.median(times["pausable"]),
        "group_pausable_last_end_ms_per_member": statistics.median(times["last_end"]),
        "group_overhead_ratio": ratio("pausable"),
        "group_overhead_last_end_ratio": ratio("last_end"),
        "group_worker_cpu_ms_per_member": cpu_ms("pausable", "worker"),
        "group_plain_worker_cpu_ms_per_member": cpu_ms("plain", "worker"),
        "group_daemon_cpu_ms_per_member": cpu_ms("pausable", "daemon"),
        "group_redis_cpu_ms_per_member": cpu_ms("pausable", "redis"),
        "group_plain_redis_cpu_ms_per_member": cpu_ms("plain", "redis"),
        "stage_join_p50_ms": statistics.median(joined),
        "stage_join_p99_ms": p99(joined),
        "stage_join_samples": float(len(joined)),
        "group_loadavg_1m_before": load_before[0],
        "group_loadavg_1m_after": os.getloadavg()[0],
    }
