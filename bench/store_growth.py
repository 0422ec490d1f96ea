"""Whether a checkpoint costs more as the store fills up, with rows as real runs leave them, on SQLite and Postgres.

Per store kind, two daemons side by side, each on a store of its own
(SQLite files; two databases of one PostgreSQL cluster with fsync and
synchronous_commit on). Each first runs one template operation to its end
the way a worker would (StartOperation, then a synchronous Checkpoint per
step with a ~300-byte result), so its rows are what the daemon writes: the
operation with its plan, input, labels and result, and its events with their
snapshots. Each store is then filled, with its daemon stopped, with copies
of that operation (new ids, the same columns) up to its size (the smaller
and the larger), `EVENTS_PER_OPERATION` events each (the template's events
repeated, renumbered), in bulk (sqlite3 executemany; asyncpg COPY, then
ANALYZE, as autovacuum would). The cost is 1 / the synchronous Checkpoint
rate of bench/daemon_throughput.py, in rounds alternating between the two
daemons; the ratio (larger store over smaller) is the median of the rounds'.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from daemon_throughput import check_durable, checkpoint_rate, register_void_workflow

from pausable.cli.launch import DaemonProcess
from pausable.server.domain import new_operation_id
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

EVENTS_PER_OPERATION = 30
TEMPLATE_STEPS = 5
CHUNK = 2_000  # operations per insert batch
RESULT = {"rows": 120, "files": [f"s3://bucket/part-{n:04d}.parquet" for n in range(6)], "checksum": "9f" * 16}


def template_operation(target: str) -> str:
    """A finished operation of TEMPLATE_STEPS steps with realistic values, driven the way a worker reports."""
    register_void_workflow(target, "bench.template", TEMPLATE_STEPS)
    with grpc.insecure_channel(target) as channel:
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        workers = worker_pb2_grpc.WorkerServiceStub(channel)
        request = pb.StartOperationRequest(workflow="bench.template", labels={"team": "data"})
        request.input.struct_value.update({"source": "s3://bucket/in/", "date": "2026-12-01", "limit": 10_000})
        operation = ops.StartOperation(request).operation
        for step in range(TEMPLATE_STEPS):
            workers.Checkpoint(
                worker_pb2.CheckpointRequest(
                    operation_id=operation.id,
                    step=step,
                    result_json=json.dumps({**RESULT, "step": step}),
                    attempt_id=uuid.uuid4().hex,
                    attempt=1,
                )
            )
        finished = ops.GetOperation(pb.GetOperationRequest(operation_id=operation.id)).operation
        if finished.state != pb.OPERATION_STATE_SUCCEEDED:
            raise RuntimeError(f"the template operation ended {pb.OperationState.Name(finished.state)}")
    return operation.id


def copies(operation: dict[str, Any], events: list[dict[str, Any]], count: int) -> Iterator[tuple[list[dict[str, Any]], ...]]:
    """Chunks of (operations, events, labels) rows: `count` copies of the template with new ids."""
    template_id = operation["id"]
    for first in range(0, count, CHUNK):
        operations, their_events, labels = [], [], []
        for _ in range(min(CHUNK, count - first)):
            new_id = new_operation_id()
            operations.append({**operation, "id": new_id})
            labels.append({"operation_id": new_id, "key": "team", "value": "data"})
            for seq in range(1, EVENTS_PER_OPERATION + 1):
                event = events[(seq - 1) % len(events)]
                snapshot = event["snapshot"].replace(template_id, new_id)
                their_events.append({**event, "operation_id": new_id, "seq": seq, "snapshot": snapshot})
        yield operations, their_events, labels


def fill_sqlite(path: Path, template_id: str, count: int) -> None:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        have = db.execute("SELECT count(*) FROM operations").fetchone()[0]
        operation = dict(db.execute("SELECT * FROM operations WHERE id = ?", (template_id,)).fetchone())
        events = [dict(row) for row in db.execute("SELECT * FROM events WHERE operation_id = ? ORDER BY seq", (template_id,))]
        for event in events:
            del event["id"]
        for chunk in copies(operation, events, max(count - have, 0)):
            for table, rows in zip(("operations", "events", "operation_labels"), chunk, strict=True):
                columns = list(rows[0])
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [tuple(row[column] for column in columns) for row in rows],
                )
        db.commit()
    finally:
        db.close()


def fill_postgres(port: int, user: str, database: str, template_id: str, count: int) -> None:
    async def fill() -> None:
        db = await asyncpg.connect(host="127.0.0.1", port=port, user=user, database=database)
        try:
            have = await db.fetchval("SELECT count(*) FROM operations")
            operation = dict(await db.fetchrow("SELECT * FROM operations WHERE id = $1", template_id))
            events = [
                dict(row) for row in await db.fetch("SELECT * FROM events WHERE operation_id = $1 ORDER BY seq", template_id)
            ]
            for event in events:
                del event["id"]
            for chunk in copies(operation, events, max(count - have, 0)):
                for table, rows in zip(("operations", "events", "operation_labels"), chunk, strict=True):
                    columns = list(rows[0])
                    await db.copy_records_to_table(
                        table, records=[tuple(row[c] for c in columns) for row in rows], columns=columns
                    )
            await db.execute("ANALYZE")
        finally:
            await db.close()

    asyncio.run(fill())


def growth(
    daemons: tuple[DaemonProcess, DaemonProcess],
    broker_url: str,
    fill: Callable[[int, str, int], None],
    sizes: tuple[int, int],
    seconds: float,
    repeats: int,
) -> tuple[float, float, float]:
    """Seconds per synchronous Checkpoint with each number of finished operations in the store, and their ratio.

    Two daemons, each on a store of its own (`fill(index, template_id, size)` fills store `index`), run side by
    side and are measured in alternating rounds, so the machine's changing load reaches both alike; the ratio is
    the median of the rounds' ratios.
    """
    for index, (daemon, size) in enumerate(zip(daemons, sizes, strict=True)):
        template_id = template_operation(daemon.target)
        register_void_workflow(daemon.target, "bench.void", 400)
        daemon.stop()
        fill(index, template_id, size)
        daemon.start()
    costs: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for daemon, cost in zip(daemons, costs, strict=True):
            cost.append(1 / checkpoint_rate(daemon.target, broker_url, seconds))
    small, large = costs
    return statistics.median(small), statistics.median(large), statistics.median(b / a for a, b in zip(small, large, strict=True))


def daemon_on(url: str, broker_url: str, log: Path) -> DaemonProcess:
    return DaemonProcess(
        url, broker_url, log, retention_seconds="0", require_step_tokens="false", step_lease_seconds="3600"
    ).start()


def measure(broker_url: str, folder: Path, sizes: tuple[int, int], seconds: float, repeats: int) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.servers import PostgresServer  # test support (tests/support/servers.py), not in the wheel

    results: dict[str, float] = {}
    paths = [folder / f"growth-{index}.db" for index in range(2)]
    daemons = [
        daemon_on(f"sqlite+aiosqlite:///{path}", broker_url, folder / f"growth-{index}.log") for index, path in enumerate(paths)
    ]
    try:
        small, large, ratio = growth(
            (daemons[0], daemons[1]),
            broker_url,
            lambda index, template, size: fill_sqlite(paths[index], template, size),
            sizes,
            seconds,
            repeats,
        )
        results |= {
            "checkpoint_us_small_store": small * 1e6,
            "checkpoint_us_large_store": large * 1e6,
            "store_growth_ratio": ratio,
        }
    finally:
        for daemon in daemons:
            daemon.stop()
    with PostgresServer(durable=True) as postgres:
        check_durable(postgres.port, postgres.user)
        names = [f"growth{index}" for index in range(2)]
        daemons = [daemon_on(postgres.create_database(name), broker_url, folder / f"postgres-{name}.log") for name in names]
        try:
            small, large, ratio = growth(
                (daemons[0], daemons[1]),
                broker_url,
                lambda index, template, size: fill_postgres(postgres.port, postgres.user, names[index], template, size),
                sizes,
                seconds,
                repeats,
            )
        finally:
            for daemon in daemons:
                daemon.stop()
    return results | {
        "postgres_checkpoint_us_small_store": small * 1e6,
        "postgres_checkpoint_us_large_store": large * 1e6,
        "postgres_store_growth_ratio": ratio,
    }
