"""Per-workflow queues: two workers with different modules on one broker never get each other's steps.

One Redis, one daemon, worker A (the demo and tests/workflows_alpha.py) and
worker B (tests/workflows_other.py). Each test step records the label of the
worker that ran it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.stack import history

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb
from pausable.workers.queues import NOT_REGISTERED

TESTS = Path(__file__).resolve().parent.parent  # tests/: workflows_alpha.py and workflows_other.py
TIMEOUT = 90.0


@dataclass
class TwoWorkers:
    daemon: DaemonProcess
    alpha: WorkerProcess
    other: WorkerProcess

    def client(self) -> Client:
        return Client(self.daemon.target)


def _worker(daemon: DaemonProcess, redis: RedisServer, folder: Path, label: str, modules: list[str]) -> WorkerProcess:
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path, "ROUTING_TEST_WORKER": label}
    return WorkerProcess(daemon.target, redis.url, folder / f"worker-{label}.log", modules, concurrency=1, env=env).start()


def _wait_for_workflows(stack: TwoWorkers, names: set[str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    with stack.client() as client:
        while not names <= {w.name for w in client.workflows()}:
            for worker in (stack.alpha, stack.other):
                if worker.process is not None and worker.process.poll() is not None:
                    raise RuntimeError(f"a worker exited; see {worker.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"workflows {names} not registered after {TIMEOUT}s")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[Path], str]) -> Iterator[TwoWorkers]:
    folder = tmp_path_factory.mktemp("routing")
    with RedisServer(folder / "redis") as redis:
        daemon = DaemonProcess(make_database(folder), redis.url, folder / "daemon.log").start()
        alpha = _worker(daemon, redis, folder, "alpha", ["pausable.workers.examples.demo", "workflows_alpha"])
        other = _worker(daemon, redis, folder, "other", ["workflows_other"])
        stack = TwoWorkers(daemon, alpha, other)
        try:
            _wait_for_workflows(stack, {"demo.etl", "alpha.triple", "other.double", "other.missing"})
            yield stack
        finally:
            other.stop()
            alpha.stop()
            daemon.stop()


def _ended(client: Client, operation_id: str) -> pb.Operation:
    history(client, operation_id, timeout=TIMEOUT)
    return client.get(operation_id).proto


def test_each_workflow_runs_only_on_the_worker_that_registered_it(two_workers: TwoWorkers) -> None:
    with two_workers.client() as client:
        started = [
            *(("alpha.triple", client.start("alpha.triple", {"value": n})) for n in range(1, 6)),
            *(("other.double", client.start("other.double", {"value": n})) for n in range(1, 6)),
            *(("demo.etl", client.start("demo.etl", {"rows": 3, "step_seconds": 0})) for _ in range(2)),
        ]
        for name, operation in started:
            ended = _ended(client, operation.id)
            assert ended.state == pb.OPERATION_STATE_SUCCEEDED, (name, ended.error)
            result = operation.refresh().result
            if name == "alpha.triple":
                assert result["ran_on"] == ["alpha", "alpha"]
            elif name == "other.double":
                assert result["ran_on"] == ["other", "other", "other"]


def test_a_step_reaching_a_worker_without_its_task_fails_the_operation(two_workers: TwoWorkers) -> None:
    with two_workers.client() as client:
        operation = client.start("other.missing", {"value": 1})
        ended = _ended(client, operation.id)
    assert ended.state == pb.OPERATION_STATE_FAILED
    assert ended.error.code == NOT_REGISTERED
    assert ended.error.step == 0 and ended.error.step_name == "other.not_here"
    assert "'other.not_here'" in ended.error.message and "workflows_other" in ended.error.message
    assert "pausable worker -m" in ended.error.message
