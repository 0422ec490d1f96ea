"""A running system for the tests that need one: one daemon and one worker on one Redis, and waits on its events.

Imported by the fixtures in tests/conftest.py (lazily, so unit tests never
load the launchers) and by integration and fault tests for the helpers:

    from support.stack import Stack, history, wait_event
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess, free_port
from pausable.clients import Client
from pausable.config import EXAMPLES_MODULE
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

    @property
    def demo_dir(self) -> Path:
        """The worker's demo folder: demo.etl's trace_file and output_dir are names inside it."""
        return self.folder / "demo"

    @property
    def http_url(self) -> str:
        """The daemon's HTTP/JSON gateway and web console."""
        return f"http://127.0.0.1:{self.daemon.env['PAUSABLE_HTTP_PORT']}"

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
    settings.setdefault("http_port", str(free_port()))
    daemon = DaemonProcess(database_url, redis.url, folder / "daemon.log", **settings).start()
    worker = WorkerProcess(
        daemon.target, redis.url, folder / "worker.log", modules=[EXAMPLES_MODULE], demo_dir=folder / "demo"
    ).start()
    stack = Stack(redis, daemon, worker, folder)
    try:
        stack.wait_for_workflows({"demo.etl", "demo.tapped"})
    except Exception:
        stack.stop()
        raise
    return stack


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


def step_running(step: int) -> Callable[[pb.OperationEvent], bool]:
    """True on progress from 0-based `step`: its body runs (a stop requested before it started takes effect before it)."""
    return lambda e: e.type == pb.EVENT_TYPE_PROGRESS and e.operation.current_step == step


def state_is(state: int) -> Callable[[pb.OperationEvent], bool]:
    return lambda e: e.operation.state == state
