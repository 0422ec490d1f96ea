"""Aggregate checkpoints/s through 1 daemon vs 3 replicas on one Postgres, in one run.

    python bench/replicas.py [--quick]

For each configuration: a fresh database on a PostgreSQL cluster with fsync
and synchronous_commit on (as in production), N `pausable serve` processes,
and load-generator processes that act as workers, each driving its share of
64 running operations through the synchronous WorkerService.Checkpoint (one
call per step, step after step, as a worker sends it: a fresh attempt_id,
not `continued`), spread over the replicas by gRPC's round robin. The chains
the daemon dispatches go to a queue no worker reads, so only the daemon
path is measured. The load processes are spawned (a fresh interpreter, no
gRPC state inherited from this one).

Two cores cannot show replicas scaling, so each configuration also reports
the CPU seconds spent per 1,000 checkpoints in the daemons and in
PostgreSQL; 1,000 over each is the checkpoints/s one core of it sustains,
and N replicas on N cores of their own reach N times the daemons' figure
until PostgreSQL's cores saturate. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

BENCH = Path(__file__).resolve().parent
TESTS = BENCH.parent / "tests"
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(BENCH))  # the PostgreSQL cluster is test support (tests/support/servers.py), not in the wheel

from cpu import tree_cpu_seconds
from support.servers import PostgresServer

from pausable.cli.launch import DaemonProcess, RedisServer
from pausable.targets import channel_options, channel_target
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

STEPS = 1000
OPERATIONS = 64
LOADERS = 2


def setup(target: str) -> list[str]:
    plan = [{"task": "bench.noop", "args": [], "kwargs": {}, "options": {"queue": "bench-void"}} for _ in range(STEPS)]
    with grpc.insecure_channel(channel_target(target), options=channel_options()) as channel:
        workers = worker_pb2_grpc.WorkerServiceStub(channel)
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        workers.RegisterWorkflows(
            worker_pb2.RegisterWorkflowsRequest(workflows=[pb.Workflow(name="bench.long", plan_json=json.dumps(plan))])
        )
        return [ops.StartOperation(pb.StartOperationRequest(workflow="bench.long")).operation.id for _ in range(OPERATIONS)]


def load(target: str, operation_ids: list[str], seconds: float, counts: multiprocessing.Queue) -> None:
    async def drive() -> tuple[int, float]:
        done = 0
        deadline = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(channel_target(target), options=channel_options()) as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)

            async def one(operation_id: str) -> None:
                nonlocal done
                step = 0
                while time.monotonic() < deadline and step < STEPS - 1:
                    await stub.Checkpoint(
                        worker_pb2.CheckpointRequest(
                            operation_id=operation_id,
                            step=step,
                            result_json=str(step),
                            attempt_id=uuid.uuid4().hex,
                            attempt=1,
                        )
                    )
                    step += 1
                    done += 1

            began = time.monotonic()
            await asyncio.gather(*(one(op) for op in operation_ids))
        return done, time.monotonic() - began

    counts.put(asyncio.run(drive()))


@dataclass
class Outcome:
    checkpoints_per_s: float
    daemon_cpu_s_per_1k: float  # in all the replicas together
    postgres_cpu_s_per_1k: float


def postmaster_pid(postgres: PostgresServer) -> int:
    assert postgres.data_dir is not None
    return int((postgres.data_dir / "data" / "postmaster.pid").read_text().split()[0])


def measure(postgres: PostgresServer, redis: RedisServer, replicas: int, seconds: float, folder: Path, run: int) -> Outcome:
    url = postgres.create_database(f"bench_{replicas}_{run}")
    daemons = [
        DaemonProcess(  # its loaders' checkpoints stand in for workers: they carry no step tokens
            url,
            redis.url,
            folder / f"daemon{replicas}-{run}-{i}.log",
            replica=f"b{i}",
            retention_seconds="0",
            require_step_tokens="false",
            step_lease_seconds="3600",
        ).start()
        for i in range(replicas)
    ]
    try:
        target = ",".join(d.target for d in daemons)
        ids = setup(target)
        spawn = multiprocessing.get_context("spawn")
        counts = spawn.Queue()
        pids = [daemon.process.pid for daemon in daemons if daemon.process is not None] + [postmaster_pid(postgres)]
        before = [tree_cpu_seconds(pid) for pid in pids]
        loaders = [spawn.Process(target=load, args=(target, ids[i::LOADERS], seconds, counts)) for i in range(LOADERS)]
        for process in loaders:
            process.start()
        results = [counts.get(timeout=seconds + 120) for _ in loaders]
        for process in loaders:
            process.join()
        spent = [tree_cpu_seconds(pid) - was for pid, was in zip(pids, before, strict=True)]
        total = sum(done for done, _ in results)
        return Outcome(
            total / max(elapsed for _, elapsed in results),
            sum(spent[:-1]) / total * 1000,
            spent[-1] / total * 1000,
        )
    finally:
        for daemon in daemons:
            daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per measure instead of 8")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    seconds = 3.0 if options.quick else 8.0
    folder = Path(tempfile.mkdtemp(prefix="pausable-bench-"))
    outcomes: dict[int, list[Outcome]] = {1: [], 3: []}
    try:
        with PostgresServer(durable=True) as postgres, RedisServer(folder / "redis") as redis:
            for run in range(options.repeats):
                for replicas in (1, 3) if run % 2 == 0 else (3, 1):
                    outcomes[replicas].append(measure(postgres, redis, replicas, seconds, folder, run))
                    print(f"run {run + 1}: {replicas} replica(s): {outcomes[replicas][-1]}", file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def median(replicas: int, field: str) -> float:
        return statistics.median(getattr(outcome, field) for outcome in outcomes[replicas])

    one, three = median(1, "checkpoints_per_s"), median(3, "checkpoints_per_s")
    daemon_cpu, postgres_cpu = median(1, "daemon_cpu_s_per_1k"), median(1, "postgres_cpu_s_per_1k")
    print(f"\n{'configuration':<28}{'checkpoints/s (median)':>24}")
    print(f"{'1 daemon, Postgres':<28}{one:>24.0f}")
    print(f"{'3 replicas, Postgres':<28}{three:>24.0f}")
    print(f"{'ratio 3 / 1':<28}{three / one:>24.2f}")
    print(
        json.dumps(
            {
                "checkpoints_per_s_1_replica": round(one),
                "checkpoints_per_s_3_replicas": round(three),
                "replica_scaling_ratio": round(three / one, 2),
                "daemon_cpu_s_per_1k_checkpoints": round(daemon_cpu, 3),
                "postgres_cpu_s_per_1k_checkpoints": round(postgres_cpu, 3),
                "daemon_3_replicas_cpu_s_per_1k_checkpoints": round(median(3, "daemon_cpu_s_per_1k"), 3),
                "checkpoints_per_s_per_daemon_core": round(1000 / daemon_cpu),
                "checkpoints_per_s_per_postgres_core": round(1000 / postgres_cpu),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
