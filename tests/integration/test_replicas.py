"""Three `pausable serve` replicas on one Postgres, with real workers: fan-out, races, failover."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.histories import PAUSED, RUNNING, assert_legal
from support.servers import PostgresServer
from support.stack import history, state_is, step_completed, wait_event

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import Client, PausableError
from pausable.v1 import operation_pb2 as pb


@dataclass
class Replicas:
    daemons: list[DaemonProcess]
    worker: WorkerProcess

    def client(self, index: int) -> Client:
        return Client(self.daemons[index].target)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A broker of their own: workers of other stacks must not take these replicas' tasks."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def replicas(tmp_path: Path, postgres: PostgresServer, redis: RedisServer) -> Iterator[Replicas]:
    redis_server = redis
    url = postgres.create_database(f"replicas_{tmp_path.name}".lower()[:60])
    daemons = []
    try:
        for index in range(3):
            daemons.append(DaemonProcess(url, redis_server.url, tmp_path / f"daemon{index}.log", replica=f"r{index}").start())
        targets = ",".join(d.target for d in daemons)
        worker = WorkerProcess(
            targets, redis_server.url, tmp_path / "worker.log", concurrency=4, demo_dir=tmp_path / "demo"
        ).start()
        stack = Replicas(daemons, worker)
        with stack.client(0) as client:
            wait_for_workflow(client)
        yield stack
        worker.stop()
    finally:
        for daemon in daemons:
            daemon.stop()


def wait_for_workflow(client: Client) -> None:
    import time

    deadline = time.monotonic() + 60
    while "demo.etl" not in {w.name for w in client.workflows()}:
        assert time.monotonic() < deadline, "the worker did not register its workflows"
        time.sleep(0.05)


def check_history(events: list[pb.OperationEvent]) -> None:
    """Every event follows from the one before by a transition of the state machine; seqs have no gap."""
    assert_legal(events)
    steps = [e.operation.current_step for e in events if e.type in (pb.EVENT_TYPE_STEP_COMPLETED, pb.EVENT_TYPE_PAUSED)]
    assert steps == sorted(set(steps)), "each step boundary is recorded once"


def traced_steps(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []


pytestmark = pytest.mark.usefixtures("postgres")


def test_a_watch_on_one_replica_streams_checkpoints_sent_to_another(
    tmp_path: Path, postgres: PostgresServer, redis: RedisServer
) -> None:
    redis_server = redis
    url = postgres.create_database("fanout_across")
    daemons = [DaemonProcess(url, redis_server.url, tmp_path / f"d{i}.log", replica=f"f{i}").start() for i in range(3)]
    worker = WorkerProcess(daemons[0].target, redis_server.url, tmp_path / "worker.log").start()
    try:
        with Client(daemons[0].target) as a, Client(daemons[1].target) as b, Client(daemons[2].target) as c:
            wait_for_workflow(a)
            op = b.start("demo.etl", {"rows": 4, "step_seconds": 0.1})
            events = [r.event for r in c.stub.Watch(pb.WatchRequest(operation_id=op.id), timeout=60)]
            check_history(events)
            assert events[-1].type == pb.EVENT_TYPE_SUCCEEDED
            assert sum(e.type == pb.EVENT_TYPE_STEP_COMPLETED for e in events) == 4
    finally:
        worker.stop()
        for daemon in daemons:
            daemon.stop()


def test_resume_on_two_replicas_at_once_dispatches_once(replicas: Replicas, tmp_path: Path) -> None:
    trace = tmp_path / "demo" / "trace.txt"  # in the worker's demo folder
    with replicas.client(0) as a, replicas.client(1) as b:
        op = a.start("demo.etl", {"rows": 4, "step_seconds": 0.2, "trace_file": trace.name})
        a.pause(op.id)
        wait_event(a, op.id, state_is(PAUSED), timeout=30)
        barrier = threading.Barrier(2)

        def resume(client: Client) -> int:
            barrier.wait()
            return client.resume(op.id).state

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(resume, (a, b)))
        assert answers == [RUNNING, RUNNING]
        op.wait(timeout=60)
        events = history(a, op.id)
        check_history(events)
        assert sum(e.type == pb.EVENT_TYPE_RESUMED for e in events) == 1
        assert [step for _, step in traced_steps(trace)] == ["1", "2", "3", "4", "5"]


def test_a_watch_on_another_replica_sees_the_actor_and_reason_of_a_command(replicas: Replicas) -> None:
    """The reason travels beside the actor through the store: replica 1's live Watch reads what replica 0 committed."""
    with replicas.client(0) as a, replicas.client(1) as b:
        op = a.start("demo.etl", {"rows": 6, "step_seconds": 0.3})
        seen: dict[int, tuple[str, str]] = {}
        asked = False
        for response in b.stub.Watch(pb.WatchRequest(operation_id=op.id), timeout=60):
            event = response.event
            seen[event.type] = (event.actor, event.reason)
            if event.type == pb.EVENT_TYPE_STEP_COMPLETED and not asked:
                asked = True
                a.pause(op.id, reason="seen from another replica")
            elif event.type == pb.EVENT_TYPE_PAUSED:
                a.cancel(op.id, reason="and cancelled there too")
        assert seen[pb.EVENT_TYPE_PAUSE_REQUESTED] == ("anonymous", "seen from another replica")
        assert seen[pb.EVENT_TYPE_CANCELLED] == ("anonymous", "and cancelled there too")


def test_two_hundred_concurrent_commands_over_three_replicas(replicas: Replicas, tmp_path: Path) -> None:
    trace = tmp_path / "demo" / "trace.txt"  # in the worker's demo folder
    clients = [replicas.client(i) for i in range(3)]
    ids = [clients[i % 3].start("demo.etl", {"rows": 3, "step_seconds": 0.3, "trace_file": trace.name}).id for i in range(20)]
    chooser = random.Random(20261126)
    commands = [(chooser.choice(clients), chooser.choice(("pause", "resume", "cancel")), chooser.choice(ids)) for _ in range(200)]

    def run(command: tuple[Client, str, str]) -> str:
        client, verb, op_id = command
        try:
            getattr(client, verb)(op_id)
            return "ok"
        except PausableError as error:
            assert error.code.name == "FAILED_PRECONDITION", error
            return "refused"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(run, commands))
    assert "ok" in outcomes
    for op_id in ids:
        op = clients[0].get(op_id)
        if op.state in ("PAUSED", "PAUSE_REQUESTED"):
            clients[1].resume(op_id)
    for op_id in ids:
        final = wait_event(
            clients[2],
            op_id,
            lambda e: e.operation.state in (pb.OPERATION_STATE_SUCCEEDED, pb.OPERATION_STATE_CANCELLED),
            timeout=120,
        )
        assert final.operation.state in (pb.OPERATION_STATE_SUCCEEDED, pb.OPERATION_STATE_CANCELLED)
        check_history(history(clients[0], op_id))
    ran = traced_steps(trace)
    assert len(ran) == len(set(ran)), "no step ran twice"
    for client in clients:
        client.close()


def test_a_replica_killed_mid_run_loses_no_checkpoint(replicas: Replicas) -> None:
    with Client(",".join(d.target for d in replicas.daemons)) as any_replica, replicas.client(1) as b:
        op = any_replica.start("demo.etl", {"rows": 4, "step_seconds": 0.4})
        wait_event(b, op.id, step_completed(0), timeout=30)
        replicas.daemons[0].kill()
        assert any_replica.get(op.id).wait(timeout=90)["steps"] == ["T1", "T2", "T3", "T4", "T5"]
        events = history(b, op.id)
        check_history(events)
        assert [e.operation.current_step for e in events if e.type == pb.EVENT_TYPE_STEP_COMPLETED] == [1, 2, 3, 4]
        assert events[-1].type == pb.EVENT_TYPE_SUCCEEDED


def test_concurrent_starts_with_one_request_id_over_three_replicas_start_one_operation(replicas: Replicas) -> None:
    clients = [replicas.client(index) for index in range(3)]
    try:
        with ThreadPoolExecutor(40) as pool:
            answers = list(
                pool.map(lambda n: clients[n % 3].start("demo.etl", {"rows": 1, "step_seconds": 0}, request_id="one"), range(40))
            )
        assert len({answer.id for answer in answers}) == 1
        assert len(clients[0].list().operations) == 1
    finally:
        for client in clients:
            client.close()
