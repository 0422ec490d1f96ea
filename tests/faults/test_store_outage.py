"""The store going away mid-run never fails a step and drops nothing (issue 9, item 6).

Each test runs its own Redis, daemon and worker (and, for Postgres, its own
cluster, since the test stops it), starts a `demo.etl` operation, takes the
store away while the operation runs, brings it back, and checks what a user
sees through the SDK: the operation SUCCEEDED with the uninterrupted result,
its history from seq 1 has no gap, every step boundary is recorded exactly
once, nothing FAILED, and each step ran once. During the outage the daemon
answers UNAVAILABLE with a message that names the store, not INTERNAL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from support.servers import PostgresServer
from support.stack import Stack, history, start_stack, step_completed, wait_event

from pausable.cli.launch import RedisServer
from pausable.clients import Client, Unavailable
from pausable.v1 import operation_pb2 as pb

STEPS = 5
INPUT = {"rows": 5, "step_seconds": 0.5}
EXPECTED_LOG = [f"T{n}" for n in range(1, STEPS + 1)]
OUTAGE_WARNING = "cannot take"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


def run_through_outage(stack: Stack, trace: Path, outage: Callable[[Client, str], None]) -> None:
    """Start demo.etl (tracing to `trace`, in the worker's demo folder), call `outage(client, operation_id)` once the first step is recorded, then check the outcome."""
    with stack.client() as client:
        op = client.start("demo.etl", {**INPUT, "trace_file": trace.name})
        wait_event(client, op.id, step_completed(0), timeout=30)
        outage(client, op.id)
        result = op.wait(timeout=60)
        events = history(client, op.id)

    assert result["steps"] == EXPECTED_LOG
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "the history has no gap"
    types = [e.type for e in events]
    assert pb.EVENT_TYPE_FAILED not in types, [e.message for e in events if e.type == pb.EVENT_TYPE_FAILED]
    assert types[-1] == pb.EVENT_TYPE_SUCCEEDED and events[-1].operation.state == pb.OPERATION_STATE_SUCCEEDED
    completed = [e.operation.current_step for e in events if e.type == pb.EVENT_TYPE_STEP_COMPLETED]
    assert completed == list(range(1, STEPS)), "every step boundary recorded once, in order"
    ran = [line.split()[1] for line in trace.read_text().splitlines() if line.startswith(op.id)]
    assert ran == [str(n) for n in range(1, STEPS + 1)], "each step ran once"

    log = stack.worker.log_path.read_text()
    warnings = log.count(OUTAGE_WARNING)
    assert warnings >= 1, "the outage reached the workers (they waited for the daemon)"
    assert warnings <= 6, f"one warning per outage and process, not one per retry: {warnings}"
    assert "Traceback" not in log, "no step raised because the control plane was down"


def test_postgres_stopped_for_10s_mid_run(tmp_path: Path, redis: RedisServer) -> None:
    with PostgresServer() as postgres:
        stack = start_stack(tmp_path / "stack", redis, postgres.create_database("pausable_outage"))
        try:

            def outage(client: Client, operation_id: str) -> None:
                postgres.halt()
                try:
                    down = time.monotonic()
                    with Client(stack.target, retry_seconds=0) as impatient, pytest.raises(Unavailable) as refused:
                        impatient.get(operation_id)
                    assert "store" in str(refused.value) and "retry" in str(refused.value)
                    time.sleep(max(0.0, 10.0 - (time.monotonic() - down)))  # the outage itself
                finally:
                    postgres.restart()

            run_through_outage(stack, stack.demo_dir / "trace", outage)
        finally:
            stack.stop()


def test_sqlite_write_lock_held_40s_mid_run(tmp_path: Path, redis: RedisServer) -> None:
    """Longer than the daemon's busy_timeout (30 s): the daemon's writes fail with "database is locked" for a while."""
    database = tmp_path / "pausable.db"
    stack = start_stack(tmp_path / "stack", redis, f"sqlite+aiosqlite:///{database}")
    try:
        refused: list[grpc.StatusCode] = []

        def write_during_lock() -> None:
            """A write that waits for the lock longer than the daemon's busy_timeout: UNAVAILABLE, not INTERNAL."""
            operations, _ = stack.stubs()
            try:
                operations.Pause(pb.PauseRequest(operation_id="0" * 32), timeout=38)
            except grpc.RpcError as error:
                refused.append(error.code())
                assert "store" in (error.details() or ""), error.details()

        def outage(client: Client, operation_id: str) -> None:
            lock = sqlite3.connect(database, isolation_level=None, timeout=30)
            lock.execute("BEGIN IMMEDIATE")
            try:
                held = time.monotonic()
                writer = threading.Thread(target=write_during_lock)
                writer.start()
                assert client.get(operation_id).state in ("RUNNING", "PAUSE_REQUESTED"), "reads go on during the lock"
                writer.join(timeout=39)
                time.sleep(max(0.0, 40.0 - (time.monotonic() - held)))  # the outage itself
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            assert refused == [grpc.StatusCode.UNAVAILABLE]

        run_through_outage(stack, stack.demo_dir / "trace", outage)
    finally:
        stack.stop()
