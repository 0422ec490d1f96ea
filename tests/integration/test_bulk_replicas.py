"""A bulk pause of 200 operations on three `pausable serve` replicas sharing one Postgres, with real workers:
every operation ends PAUSED exactly once, whichever replica processes which batch."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.histories import assert_legal
from support.servers import PostgresServer
from support.stack import history, state_is, wait_event

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb

COUNT = 200


@pytest.fixture
def daemons(tmp_path: Path, postgres: PostgresServer) -> Iterator[list[DaemonProcess]]:
    url = postgres.create_database(f"bulk_{tmp_path.name}".lower()[:60])
    with RedisServer(tmp_path / "redis") as redis:
        started: list[DaemonProcess] = []
        try:
            for index in range(3):
                started.append(DaemonProcess(url, redis.url, tmp_path / f"daemon{index}.log", replica=f"r{index}").start())
            worker = WorkerProcess(
                ",".join(d.target for d in started), redis.url, tmp_path / "worker.log", concurrency=4, demo_dir=tmp_path / "demo"
            ).start()
            with Client(started[0].target) as client:
                patience = time.monotonic() + 60
                while "demo.etl" not in {w.name for w in client.workflows()}:
                    assert time.monotonic() < patience, "the worker did not register its workflows"
                    time.sleep(0.05)
            yield started
            worker.stop()
        finally:
            for daemon in started:
                daemon.stop()


def test_a_bulk_pause_of_200_operations_on_three_replicas_pauses_each_exactly_once(daemons: list[DaemonProcess]) -> None:
    labels = {"suite": uuid.uuid4().hex}
    clients = [Client(daemon.target) for daemon in daemons]
    with ThreadPoolExecutor(8) as pool:
        started = list(
            pool.map(lambda n: clients[n % 3].start("demo.etl", {"step_seconds": 2, "rows": 3}, labels=labels).id, range(COUNT))
        )
    action = clients[0].bulk_pause(labels=labels, states=[pb.OPERATION_STATE_RUNNING], reason="freeze")
    assert action.matched == COUNT
    # Watched on another replica than the one that took the request: the progress is in the store.
    progress = list(clients[2].watch_bulk_action(action.id, timeout=120))
    assert [update.done for update in progress] == sorted(update.done for update in progress)
    finished = progress[-1]
    assert finished.done_processing and (finished.matched, finished.done, finished.skipped, finished.failed) == (
        COUNT,
        COUNT,
        0,
        0,
    )
    assert clients[1].get_bulk_action(action.id).done == COUNT

    for index, operation_id in enumerate(started):
        wait_event(clients[index % 3], operation_id, state_is(pb.OPERATION_STATE_PAUSED), timeout=120)
    cancel = clients[1].wait_bulk_action(clients[1].bulk_cancel(started, reason="done testing").id, timeout=120)
    assert (cancel.matched, cancel.done) == (COUNT, COUNT)
    for index, operation_id in enumerate(started):
        events = history(clients[index % 3], operation_id, timeout=60)
        assert_legal(events)
        types = [event.type for event in events]
        assert types.count(pb.EVENT_TYPE_PAUSE_REQUESTED) == 1 and types.count(pb.EVENT_TYPE_PAUSED) == 1, operation_id
        requested = next(event for event in events if event.type == pb.EVENT_TYPE_PAUSE_REQUESTED)
        assert requested.reason == "freeze" and f"bulk action {action.id}" in requested.message
        assert events[-1].type == pb.EVENT_TYPE_CANCELLED and events[-1].reason == "done testing"
    for client in clients:
        client.close()


pytestmark = pytest.mark.usefixtures("postgres")
