"""pausable's benchmarks, each a ratio against a baseline measured in the same run.

    python bench/run.py            # full run
    python bench/run.py --quick    # under 5 minutes on 2 cores

Starts what it needs (a Redis, the daemon on SQLite, a `pausable worker`
with bench/bench_tasks.py and the default prefork pool, a trivial grpc.aio
server as the baseline; some measures start workers, a daemon or a
PostgreSQL cluster of their own), runs every measure, stops them all,
prints a table and, as its last line, one JSON object. Every figure is a
median over repetitions, interleaved with its baseline's. The run's folder
(/tmp/pausable-bench-*) is removed at the end unless --keep is given or a
measure failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import redis
from celery import Celery, Signature, chain

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH", "")]))

import store_growth
from bulk import measure_bulk_pause
from daemon_throughput import (
    measure_postgres,
    measure_throughput,
    register_void_workflow,
    void_operations,
)
from fanout import measure_fanout
from gateway import measure_get, measure_sse_fanout
from group_overhead import measure_group_overhead
from inner_pause import measure_inner_pause
from stats import p99
from user_latency import measure_pause_load, measure_watch_delay
from worker_throughput import measure_worker_throughput

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess, free_port, stop_process
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc
from pausable.workers.queues import workflow_queue


@dataclass
class Rig:
    redis: RedisServer
    daemon: DaemonProcess
    worker: WorkerProcess
    baseline: subprocess.Popen[bytes]
    baseline_target: str
    folder: Path
    quick: bool

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.env['PAUSABLE_HTTP_PORT']}"

    def channel(self, target: str | None = None) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(target or self.daemon.target)


def start_rig(quick: bool) -> Rig:
    folder = Path(tempfile.mkdtemp(prefix="pausable-bench-"))
    server = RedisServer(folder / "redis").start()
    os.environ["PAUSABLE_BROKER_URL"] = server.url
    # The benches' own Checkpoint and ReportProgress calls stand in for workers: they carry no step tokens.
    # Their void operations' chains are deleted from the broker and never run: a lease longer than the run keeps the
    # lease sweep from dispatching thousands of them again in the middle of later measures.
    daemon = DaemonProcess(
        f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        server.url,
        folder / "daemon.log",
        retention_seconds="0",
        require_step_tokens="false",
        step_lease_seconds="3600",
        http_port=str(free_port()),
    ).start()
    worker = WorkerProcess(daemon.target, server.url, folder / "worker.log", modules=["bench_tasks"]).start()
    port = free_port()
    baseline = subprocess.Popen([sys.executable, str(BENCH / "baseline.py"), str(port)])
    rig = Rig(server, daemon, worker, baseline, f"127.0.0.1:{port}", folder, quick)
    with grpc.insecure_channel(daemon.target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        deadline = time.monotonic() + 60
        while "bench.noop100" not in {w.name for w in ops.ListWorkflows(pb.ListWorkflowsRequest()).workflows}:
            if time.monotonic() > deadline:
                raise SystemExit(f"the bench worker did not register; see {folder / 'worker.log'}")
            time.sleep(0.1)
    with grpc.insecure_channel(rig.baseline_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
    register_void_workflow(rig.daemon.target, "bench.void", 400)
    register_void_workflow(rig.daemon.target, "bench.void5", 5)
    return rig


def stop_rig(rig: Rig) -> None:
    rig.worker.stop()
    rig.daemon.stop()
    stop_process(rig.baseline)
    rig.redis.stop()


def fanout_sides(rig: Rig) -> tuple[tuple[str, int], tuple[str, int], Callable[[], str]]:
    """The daemon and the bare server (address, pid) and how to make an operation whose chain no worker runs."""
    return (
        (rig.daemon.target, pid(rig.daemon.process)),
        (rig.baseline_target, pid(rig.baseline)),
        lambda: void_operations(rig.daemon.target, rig.redis.url, "bench.void", 1)[0],
    )


def pid(process: subprocess.Popen[bytes] | None) -> int:
    if process is None:
        raise RuntimeError("the process is not running")
    return process.pid


# -- 1. per-step overhead of the in-worker checkpoint ---------------------------------


def plain_chain(app: Celery, variant: str, token: str) -> Signature:
    """STEPS no-op tasks as a plain chain (its last one tells the bench it ended), on the pausable workflow's queue;
    the seed recipe's variant adds its pause_or_continue task between every two steps."""
    from bench_tasks import STEPS

    queue = workflow_queue("bench.noop100")
    steps = [app.signature("bench.plain", args=(0,), queue=queue)]
    steps += [app.signature("bench.plain", queue=queue) for _ in range(STEPS - 2)]
    steps.append(app.signature("bench.plain_done", kwargs={"token": token}, queue=queue))
    if variant == "seed":
        pause_point = "bench.seed_pause_or_continue"
        steps = [s for step in steps[:-1] for s in (step, app.signature(pause_point, queue=queue))] + steps[-1:]
    return chain(*steps)


def chain_seconds(rig: Rig, variant: str, app: Celery, ops: operation_pb2_grpc.OperationServiceStub) -> float:
    """Wall time of one chain of STEPS no-op steps: from sending it (built before) to learning that it ended."""
    if variant == "pausable":
        started = time.monotonic()
        op = ops.StartOperation(pb.StartOperationRequest(workflow="bench.noop100")).operation
        for response in ops.Watch(pb.WatchRequest(operation_id=op.id, after_seq=op.last_seq)):
            last = response.event
        assert last.operation.state == pb.OPERATION_STATE_SUCCEEDED, last
        return time.monotonic() - started
    token = uuid.uuid4().hex
    built = plain_chain(app, variant, token)
    client = redis.Redis.from_url(rig.redis.url, socket_timeout=180)  # redis-py's default (5 s) ends a long BLPOP
    client.ping()
    started = time.monotonic()
    built.apply_async()
    client.blpop([f"bench:done:{token}"], timeout=120)
    return time.monotonic() - started


def measure_overhead(rig: Rig, repeats: int) -> dict[str, float]:
    """Per step (the chain's time over its STEPS steps), on the rig's worker (default pool), in interleaved rounds;
    the ratios are the medians of the rounds' ratios."""
    from bench_tasks import STEPS

    times: dict[str, list[float]] = {"plain": [], "pausable": [], "seed": []}
    app = Celery(broker=rig.redis.url, set_as_current=False)
    with grpc.insecure_channel(rig.daemon.target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        for variant in times:
            chain_seconds(rig, variant, app, ops)  # warm-up: connections, the worker's producer pool
        for _ in range(repeats):
            for variant, values in times.items():
                values.append(chain_seconds(rig, variant, app, ops) / STEPS * 1000)
    app.close()

    def ratio(variant: str) -> float:
        return statistics.median(v / p for v, p in zip(times[variant], times["plain"], strict=True))

    return {
        "plain_ms_per_step": statistics.median(times["plain"]),
        "pausable_ms_per_step": statistics.median(times["pausable"]),
        "seed_ms_per_step": statistics.median(times["seed"]),
        "checkpoint_overhead_ratio": ratio("pausable"),
        "seed_overhead_ratio": ratio("seed"),
    }


# -- 3. pause latency ------------------------------------------------------------------


def measure_pause_latency(rig: Rig, pauses: int) -> dict[str, float]:
    """Pause at a random moment of a run of 50 ms steps.

    latency = PAUSED arrival - max(Pause return, end of the last step that ran),
    where each step pushes its end time to `bench:ended:<id>` in Redis.
    """
    import random

    chooser = random.Random(7)
    latencies: list[float] = []
    client = redis.Redis.from_url(rig.redis.url)
    with grpc.insecure_channel(rig.daemon.target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        while len(latencies) < pauses:
            op = ops.StartOperation(pb.StartOperationRequest(workflow="bench.sleep50")).operation
            stream = ops.Watch(pb.WatchRequest(operation_id=op.id, after_seq=op.last_seq))
            time.sleep(chooser.uniform(0.12, 0.3))
            reply = ops.Pause(pb.PauseRequest(operation_id=op.id)).operation
            returned = time.time()
            if reply.state == pb.OPERATION_STATE_PAUSE_REQUESTED:
                for response in stream:
                    if response.event.type == pb.EVENT_TYPE_PAUSED:
                        arrived = time.time()
                        last_end = float(client.lrange(f"bench:ended:{op.id}", -1, -1)[0])
                        latencies.append((arrived - max(returned, last_end)) * 1000)
                        break
            stream.cancel()
            ops.Cancel(pb.CancelRequest(operation_id=op.id))
    return {
        "pause_latency_p50_ms": statistics.median(latencies),
        "pause_latency_p99_ms": p99(latencies),
        "pause_latency_max_ms": max(latencies),
    }


def measure_lease_recovery(rig: Rig, repeats: int) -> dict[str, float]:
    """From a worker's SIGKILL (its whole process group) to its step running again on another worker, with a 5 s lease.

    A daemon of its own (lease 5 s) and two prefork workers, on Redis database 1
    so the rig's worker never sees these steps. Each repetition runs
    bench.recover (2 s steps), kills the worker holding step 2 once the step
    reports progress, and times the first progress of its next attempt (on
    the other worker, already running). The killed worker is replaced before
    the next repetition.
    """
    import signal

    from pausable.clients import Client

    folder = rig.folder / "lease"
    folder.mkdir(exist_ok=True)
    broker = rig.redis.url.rsplit("/", 1)[0] + "/1"
    holders = redis.Redis.from_url(broker)
    daemon = DaemonProcess(
        f"sqlite+aiosqlite:///{folder / 'lease.db'}", broker, folder / "daemon.log", step_lease_seconds="5"
    ).start()
    names = iter(range(1000))

    def worker() -> WorkerProcess:
        env = {"PAUSABLE_STEP_LEASE_SECONDS": "5"}
        return WorkerProcess(daemon.target, broker, folder / f"worker{next(names)}.log", modules=["bench_tasks"], env=env).start()

    workers = [worker(), worker()]
    recoveries: list[float] = []
    try:
        with Client(daemon.target) as client:
            deadline = time.monotonic() + 60
            while "bench.recover" not in {w.name for w in client.workflows()} and time.monotonic() < deadline:
                time.sleep(0.1)
            for _ in range(repeats):
                operation = client.start("bench.recover", 0)
                killed_at = 0.0
                for event in client.watch(operation.id):
                    if event.type != pb.EVENT_TYPE_PROGRESS or event.operation.current_step != 1:
                        continue
                    if not killed_at:
                        group = os.getpgid(int(holders.get(f"bench:holder:{operation.id}:1") or 0))
                        os.killpg(group, signal.SIGKILL)
                        killed_at = time.monotonic()
                        killed = next(w for w in workers if w.process is not None and w.process.pid == group)
                        killed.stop()
                        workers.remove(killed)
                    elif event.operation.attempt == 2:
                        recoveries.append(time.monotonic() - killed_at)
                        break
                client.cancel(operation.id)
                spawned = time.time()
                workers.append(worker())
                while not any(
                    w.name == "bench.recover" and w.register_time.ToNanoseconds() / 1e9 > spawned for w in client.workflows()
                ):
                    time.sleep(0.1)  # the replacement registers its workflows when it is ready
    finally:
        for survivor in workers:
            survivor.stop()
        daemon.stop()
    return {"lease_recovery_s": statistics.median(recoveries), "lease_recovery_max_s": max(recoveries)}


# -- 6. store growth and replay ---------------------------------------------------------


def measure_store_growth(rig: Rig, seconds: float, repeats: int, sizes: tuple[int, int]) -> dict[str, float]:
    """Checkpoint cost with sizes[0] and sizes[1] finished operations in the store, on SQLite and Postgres (see
    bench/store_growth.py), and a replay of 10,000 events."""
    import sqlite3

    results = store_growth.measure(rig.redis.url, rig.folder, sizes, seconds, repeats)
    op_id = void_operations(rig.daemon.target, rig.redis.url, "bench.void", 1)[0]
    rig.daemon.stop()
    db = sqlite3.connect(rig.folder / "bench.db")
    snapshot = db.execute("SELECT snapshot FROM events WHERE operation_id = ? AND seq = 2", (op_id,)).fetchone()[0]
    db.executemany(
        "INSERT INTO events (operation_id, seq, type, message, state, snapshot, created_at, tx) VALUES (?, ?, 'PROGRESS', 'filler', 'RUNNING', ?, datetime('now'), 0)",
        [(op_id, seq, snapshot) for seq in range(3, 10_003)],
    )
    db.execute("UPDATE operations SET last_seq = 10002 WHERE id = ?", (op_id,))
    db.commit()
    db.close()
    rig.daemon.start()
    replays = []
    with grpc.insecure_channel(rig.daemon.target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        for _ in range(repeats):
            started = time.monotonic()
            for count, _response in enumerate(ops.Watch(pb.WatchRequest(operation_id=op_id, after_seq=2)), start=1):
                if count == 10_000:
                    break
            replays.append(time.monotonic() - started)
    return results | {"replay_10k_events_s": statistics.median(replays)}


# -- WatchEvents: idle global streams must not slow operations down ---------------------


def measure_watchevents(rig: Rig, streams: int, repeats: int) -> dict[str, float]:
    """Wall time of a 5-step operation (start to SUCCEEDED, real worker), alone and with `streams` idle WatchEvents
    streams open (their filter matches none of the timed operations: every commit still wakes the global stream)."""

    async def five_steps(ops: operation_pb2_grpc.OperationServiceStub) -> float:
        started = time.monotonic()
        op = (await ops.StartOperation(pb.StartOperationRequest(workflow="bench.noop5"))).operation
        async for response in ops.Watch(pb.WatchRequest(operation_id=op.id, after_seq=op.last_seq)):
            last = response.event
        assert last.operation.state == pb.OPERATION_STATE_SUCCEEDED, last
        return time.monotonic() - started

    async def median_of(ops: operation_pb2_grpc.OperationServiceStub) -> float:
        await five_steps(ops)  # warm-up
        return statistics.median([await five_steps(ops) for _ in range(repeats)])

    async def with_streams(ops: operation_pb2_grpc.OperationServiceStub) -> float:
        async with rig.channel() as idle_channel:
            idle_ops = operation_pb2_grpc.OperationServiceStub(idle_channel)
            marker = {"idle-marker": uuid.uuid4().hex}
            idle = pb.WatchEventsRequest(workflow="bench.idle", labels=marker)
            calls = [idle_ops.WatchEvents(idle) for _ in range(streams)]
            live = [asyncio.Event() for _ in calls]

            async def drain(call: grpc.aio.UnaryStreamCall, seen: asyncio.Event) -> None:
                async for _response in call:
                    seen.set()

            # Each stream is open, its replay done and it is fed live once it has the marker operation's event (a
            # void operation: its steps go to a queue no worker reads); after that the streams see nothing the
            # timed operations do. Timing before then would count their opening (measured: ratio 1.55 after a 2 s
            # wait, 1.07 after 12 s on a loaded machine).
            readers = [asyncio.create_task(drain(call, seen)) for call, seen in zip(calls, live, strict=True)]
            await ops.StartOperation(pb.StartOperationRequest(workflow="bench.idle", labels=marker))
            await asyncio.wait_for(asyncio.gather(*(seen.wait() for seen in live)), 120)
            watched = await median_of(ops)
            for call in calls:
                call.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        return watched

    async def run() -> dict[str, float]:
        """Alternating rounds (the machine's load drifts): the ratio is the median of the rounds' ratios."""
        alone, watched = [], []
        async with rig.channel() as channel:
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            for _round in range(3):
                alone.append(await median_of(ops))
                watched.append(await with_streams(ops))
                await asyncio.sleep(0.5)
        return {
            "watchevents_alone_s": statistics.median(alone),
            f"watchevents_{streams}_idle_s": statistics.median(watched),
            "watchevents_idle_ratio": statistics.median(w / a for w, a in zip(watched, alone, strict=True)),
        }

    register = time.monotonic() + 60
    with grpc.insecure_channel(rig.daemon.target) as channel:
        stub = operation_pb2_grpc.OperationServiceStub(channel)
        while "bench.noop5" not in {w.name for w in stub.ListWorkflows(pb.ListWorkflowsRequest()).workflows}:
            if time.monotonic() > register:
                raise SystemExit("bench.noop5 is not registered: is bench_tasks.py the worker's module?")
            time.sleep(0.1)
    register_void_workflow(rig.daemon.target, "bench.idle", 1)
    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter measures (under 5 minutes)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated measures to run (overhead, throughput, workerthroughput, pause, pauseload, watchdelay, "
        "postgres, fanout, fanout10k, gateway, growth, lease, watchevents, inner, bulk, group); all by default",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, stores); kept anyway on failure")
    options = parser.parse_args()
    only = set(filter(None, options.only.split(",")))
    quick = options.quick
    repeats = 3 if quick else 5
    seconds = 2.0 if quick else 5.0
    rig = start_rig(quick)
    results: dict[str, float] = {}
    finished = False
    try:
        for name, title, measure in (
            ("overhead", "checkpoint overhead", lambda: measure_overhead(rig, repeats)),
            (
                "throughput",
                "checkpoint, start and resume throughput",
                lambda: measure_throughput(
                    rig.daemon.target, rig.baseline_target, rig.redis.url, repeats, seconds, 500 if quick else 2500
                ),
            ),
            (
                "workerthroughput",
                "worker throughput at saturation against plain Celery",
                lambda: measure_worker_throughput(
                    rig.daemon.target,
                    rig.redis.url,
                    rig.folder,
                    100 if quick else 200,
                    3 if quick else 7,
                    pid(rig.daemon.process),
                    pid(rig.redis.process),
                ),
            ),
            ("pause", "pause latency", lambda: measure_pause_latency(rig, 30 if quick else 100)),
            (
                "pauseload",
                "pause latency users feel (idle, 300 running)",
                lambda: measure_pause_load(
                    rig.daemon.target, rig.redis.url, rig.folder, 200 if quick else 1000, 2 if quick else 4
                ),
            ),
            (
                "watchdelay",
                "watch delay against AsyncResult.get()",
                lambda: measure_watch_delay(rig.daemon.target, rig.redis.url, rig.folder, 5 if quick else 25),
            ),
            (
                "postgres",
                "checkpoints on Postgres (fsync on)",
                lambda: measure_postgres(rig.baseline_target, rig.redis.url, rig.folder, 2 if quick else repeats, seconds),
            ),
            (
                "fanout",
                "fan-out to 1,000 watchers",
                lambda: measure_fanout(*fanout_sides(rig), 1000, 10 if quick else 20, 0.25, 2 if quick else 4),
            ),
            (
                "fanout10k",
                "fan-out to 10,000 watchers",
                lambda: measure_fanout(*fanout_sides(rig), 10_000, 3 if quick else 5, 2.5, 1 if quick else 4, prefix="fanout10k"),
            ),
            (
                "growth",
                "store growth (SQLite, Postgres)",
                lambda: measure_store_growth(rig, seconds, repeats, (5_000, 50_000) if quick else (10_000, 100_000)),
            ),
            (
                "gateway",
                "HTTP gateway: GET against gRPC, SSE fan-out to 1,000 against Watch",
                lambda: {
                    **measure_get(
                        rig.daemon.target, rig.http_url, fanout_sides(rig)[2](), 3 if quick else 7, 300 if quick else 1000
                    ),
                    **measure_sse_fanout(
                        fanout_sides(rig)[0],
                        rig.http_url,
                        fanout_sides(rig)[2],
                        1000,
                        10 if quick else 20,
                        0.25,
                        2 if quick else 4,
                    ),
                },
            ),
            ("lease", "lease recovery", lambda: measure_lease_recovery(rig, 2 if quick else repeats)),
            ("watchevents", "idle WatchEvents streams", lambda: measure_watchevents(rig, 1000, 5 if quick else 15)),
            (
                "inner",
                "pause within a cooperative step (demo.long)",
                lambda: measure_inner_pause(rig.daemon.target, rig.redis.url, rig.folder, 60 if quick else 200),
            ),
            (
                "bulk",
                "bulk pause of 1,000 running operations",
                lambda: measure_bulk_pause(rig.daemon.target, rig.redis.url, rig.folder, 1 if quick else 3),
            ),
            (
                "group",
                "a map stage of no-op members against a Celery group; stage join",
                lambda: measure_group_overhead(
                    rig.daemon.target,
                    rig.redis.url,
                    rig.folder,
                    200 if quick else 1000,
                    2 if quick else 7,
                    30 if quick else 200,
                    pid(rig.daemon.process),
                    pid(rig.redis.process),
                ),
            ),
        ):
            if only and name not in only:
                continue
            started = time.monotonic()
            results.update(measure())
            print(f"[{title}: {time.monotonic() - started:.0f}s]", file=sys.stderr, flush=True)
        finished = True
    finally:
        stop_rig(rig)
        if finished and not options.keep:
            shutil.rmtree(rig.folder, ignore_errors=True)
        else:
            print(f"logs and stores kept in {rig.folder}", file=sys.stderr)
    targets = {  # issue 12's targets; pause_latency_p99_ms and fanout_rss_mb are the earlier measures' own
        "checkpoint_overhead_ratio": ("<=", 1.15),
        "worker_throughput_ratio": (">=", 0.85),
        "checkpoint_throughput_ratio": (">=", 0.50),
        "start_throughput_ratio": (">=", 0.40),
        "resume_throughput_ratio": (">=", 1.0),
        "postgres_checkpoint_ratio": (">=", 0.30),
        "pause_latency_p99_ms": ("<=", 20),
        "pause_to_paused_p99_ms": ("<=", 50 + 20),  # the step length (50 ms) + 20
        "pause_all_300_s": ("<=", 1.0),
        "watch_delay_ratio": ("<=", 1.5),
        "fanout_p99_ratio": ("<=", 1.2),
        "fanout_rss_ratio": ("<=", 1.5),
        "fanout_rss_mb": ("<=", 150),
        "fanout10k_p99_ratio": ("<=", 1.2),
        "fanout10k_rss_ratio": ("<=", 1.5),
        "store_growth_ratio": ("<=", 1.1),
        "postgres_store_growth_ratio": ("<=", 1.1),
        "watchevents_idle_ratio": ("<=", 1.10),
        "sse_fanout_p99_ratio": ("<=", 1.5),  # issue 16
        "inner_pause_latency_p99_ms": ("<=", 1000),  # issue 13
        "group_overhead_ratio": ("<=", 1.25),  # issue 14
    }
    print(f"\n{'measure':<40}{'value':>12}  target")
    for key, value in results.items():
        target = targets.get(key)
        verdict = ""
        if target:
            ok = value <= target[1] if target[0] == "<=" else value >= target[1]
            verdict = f"{target[0]} {target[1]}  {'met' if ok else 'NOT MET'}"
        print(f"{key:<40}{value:>12.3f}  {verdict}")
    print(json.dumps({key: round(value, 3) for key, value in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
