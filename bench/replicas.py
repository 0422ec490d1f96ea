"""Aggregate checkpoints/s through 1 daemon vs 3 replicas on one Postgres, in one run.

    python bench/replicas.py [--quick]

For each configuration: a fresh database, N `pausable serve` processes, and
load-generator processes that act as workers, each driving its share of 64
running operations through WorkerService.Checkpoint (one call per step,
step after step, as a worker does), spread over the replicas by gRPC's
round robin. The chains the daemon dispatches go to a queue no worker reads,
so only the daemon path is measured. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the PostgreSQL cluster is test support (tests/support/servers.py), not in the wheel

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
    async def drive() -> int:
        done = 0
        deadline = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(channel_target(target), options=channel_options()) as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)

            async def one(operation_id: str) -> None:
                nonlocal done
                step = 0
                while time.monotonic() < deadline and step < STEPS - 1:
                    await stub.Checkpoint(
                        worker_pb2.CheckpointRequest(operation_id=operation_id, step=step, result_json=str(step), continued=True)
                    )
                    step += 1
                    done += 1

            await asyncio.gather(*(one(op) for op in operation_ids))
        return done

    counts.put(asyncio.run(drive()))


def measure(postgres: PostgresServer, redis: RedisServer, replicas: int, seconds: float, folder: Path, run: int) -> float:
    url = postgres.create_database(f"bench_{replicas}_{run}")
    daemons = [
        DaemonProcess(  # its loaders' checkpoints stand in for workers: they carry no step tokens
            url,
            redis.url,
            folder / f"daemon{replicas}-{run}-{i}.log",
            replica=f"b{i}",
            retention_seconds="0",
            require_step_tokens="false",
        ).start()
        for i in range(replicas)
    ]
    try:
        target = ",".join(d.target for d in daemons)
        ids = setup(target)
        counts: multiprocessing.Queue = multiprocessing.Queue()
        shares = [ids[i::LOADERS] for i in range(LOADERS)]
        started = time.monotonic()
        loaders = [multiprocessing.Process(target=load, args=(target, share, seconds, counts)) for share in shares]
        for process in loaders:
            process.start()
        total = sum(counts.get(timeout=seconds + 120) for _ in loaders)
        elapsed = time.monotonic() - started
        for process in loaders:
            process.join()
        return total / elapsed
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
    rates: dict[int, list[float]] = {1: [], 3: []}
    with PostgresServer() as postgres, RedisServer(folder / "redis") as redis:
        for run in range(options.repeats):
            for replicas in (1, 3):
                rates[replicas].append(measure(postgres, redis, replicas, seconds, folder, run))
                print(f"run {run + 1}: {replicas} replica(s): {rates[replicas][-1]:8.0f} checkpoints/s", file=sys.stderr)
    one, three = statistics.median(rates[1]), statistics.median(rates[3])
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
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
