"""Fixtures that start the real parts: redis-server, `pausable serve`, `pausable worker` (celery)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from support.servers import PostgresServer

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2_grpc


@dataclass
class Stack:
    """One daemon (SQLite in a temp folder) and one worker on one Redis."""

    redis: RedisServer
    daemon: DaemonProcess
    worker: WorkerProcess
    folder: Path

    @property
    def target(self) -> str:
        return self.daemon.target

    def client(self) -> Client:
        return Client(self.target)

    def stubs(self) -> tuple[operation_pb2_grpc.OperationServiceStub, worker_pb2_grpc.WorkerServiceStub]:
        channel = grpc.insecure_channel(self.target)
        return operation_pb2_grpc.OperationServiceStub(channel), worker_pb2_grpc.WorkerServiceStub(channel)

    def wait_for_workflows(self, names: set[str], timeout: float = 60.0) -> None:
        with self.client() as client:
            deadline = time.monotonic() + timeout
            while not names <= {w.name for w in client.workflows()}:
                if self.worker.process is not None and self.worker.process.poll() is not None:
                    raise RuntimeError(f"the worker exited; see {self.worker.log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"workflows {names} not registered after {timeout}s; see {self.worker.log_path}")
                time.sleep(0.05)

    def stop(self) -> None:
        self.worker.stop()
        self.daemon.stop()


def start_stack(folder: Path, redis: RedisServer, database_url: str, **settings: str) -> Stack:
    folder.mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(database_url, redis.url, folder / "daemon.log", **settings).start()
    worker = WorkerProcess(daemon.target, redis.url, folder / "worker.log").start()
    stack = Stack(redis, daemon, worker, folder)
    try:
        stack.wait_for_workflows({"demo.etl", "demo.tapped"})
    except Exception:
        stack.stop()
        raise
    return stack


BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def make_database(backend: str, request: pytest.FixtureRequest) -> Callable[[Path], str]:
    """A fresh, empty store on the backend under test: SQLite in `folder`, or a new Postgres database."""
    names = itertools.count()

    def make(folder: Path) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{folder / 'pausable.db'}"
        postgres: PostgresServer = request.getfixturevalue("postgres")
        return postgres.create_database(f"pausable_{next(names)}")

    return make


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, make_database: Callable[[Path], str]
) -> Iterator[Stack]:
    """Shared by the tests that do not restart anything; one per backend."""
    folder = tmp_path_factory.mktemp("stack")
    stack = start_stack(folder, redis_server, make_database(folder))
    yield stack
    stack.stop()


@pytest.fixture
def private_stack(tmp_path: Path, make_database: Callable[[Path], str]) -> Iterator[Stack]:
    """A stack of its own (Redis included), for tests that kill or restart the daemon."""
    redis = RedisServer(tmp_path / "redis").start()
    stack = start_stack(tmp_path / "stack", redis, make_database(tmp_path))
    yield stack
    stack.stop()
    redis.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with stack.client() as client:
        yield client


def wait_event(
    client: Client, operation_id: str, predicate: Callable[[pb.OperationEvent], bool], timeout: float = 60.0, after_seq: int = 0
) -> pb.OperationEvent:
    """The first event (after `after_seq`) that satisfies `predicate`; fails after `timeout` seconds."""
    request = pb.WatchRequest(operation_id=operation_id, after_seq=after_seq)
    for response in client.stub.Watch(request, timeout=timeout):
        if predicate(response.event):
            return response.event
    raise AssertionError(f"operation {operation_id} ended without the awaited event")


def history(client: Client, operation_id: str, timeout: float = 60.0) -> list[pb.OperationEvent]:
    """Every event of the operation from seq 1, waiting until it has ended."""
    return [r.event for r in client.stub.Watch(pb.WatchRequest(operation_id=operation_id), timeout=timeout)]


def step_completed(step: int) -> Callable[[pb.OperationEvent], bool]:
    """True on the event recording that 0-based `step` finished and the next one runs."""
    return lambda e: e.type == pb.EVENT_TYPE_STEP_COMPLETED and e.operation.current_step == step + 1


def state_is(state: int) -> Callable[[pb.OperationEvent], bool]:
    return lambda e: e.operation.state == state
