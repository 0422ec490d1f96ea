"""A daemon, its Redis and any number of workers, each killable on its own, with short leases: the fault tests' rig."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from support.histories import TERMINAL, assert_legal
from support.stack import step_running  # noqa: F401 - the fault tests import it from here

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import Client
from pausable.config import EXAMPLES_MODULE
from pausable.v1 import operation_pb2 as pb

LEASE_SECONDS = "3"
OUTBOX_GRACE_SECONDS = "2"
FIVE_STEPS = ["T1", "T2", "T3", "T4", "T5"]


@dataclass
class Rig:
    folder: Path
    database_url: str
    redis: RedisServer
    daemon: DaemonProcess
    workers: list[WorkerProcess] = field(default_factory=list)
    names: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def start(cls, folder: Path, database_url: str, **daemon_settings: str) -> Rig:
        """`daemon_settings`: more PAUSABLE_* settings of the daemon, e.g. default_max_attempts="10"."""
        folder.mkdir(parents=True, exist_ok=True)
        redis = RedisServer(folder / "redis").start()
        settings = {"step_lease_seconds": LEASE_SECONDS, "outbox_grace_seconds": OUTBOX_GRACE_SECONDS, **daemon_settings}
        daemon = DaemonProcess(database_url, redis.url, folder / "daemon.log", **settings).start()
        return cls(folder, database_url, redis, daemon)

    def add_worker(self, concurrency: int = 2, wait: bool = True) -> WorkerProcess:
        name = f"worker{next(self.names)}"
        worker = WorkerProcess(
            self.daemon.target, self.redis.url, self.folder / f"{name}.log", modules=[EXAMPLES_MODULE], concurrency=concurrency,
            env={"PAUSABLE_STEP_LEASE_SECONDS": LEASE_SECONDS}, demo_dir=self.demo_dir,
        ).start()  # fmt: skip
        self.workers.append(worker)
        if wait:
            self.wait_for_workflows({"demo.etl"})
        return worker

    @property
    def demo_dir(self) -> Path:
        """Every worker's demo folder: demo.etl's trace_file and output_dir are names inside it."""
        return self.folder / "demo"

    def restart_daemon(self, **env: str) -> None:
        """Start the daemon again on the same port and store (after it died or was killed)."""
        self.daemon.stop()
        self.daemon.env = {key: value for key, value in self.daemon.env.items() if not key.startswith("PAUSABLE_TEST_")}
        self.daemon.env.update(env)
        self.daemon.start()

    def client(self) -> Client:
        """Retrying for up to a minute: long enough to ride out a daemon restart."""
        return Client(self.daemon.target, retry_seconds=60.0)

    def wait_for_workflows(self, names: set[str], timeout: float = 60.0) -> None:
        with self.client() as client:
            wait_until(lambda: names <= {w.name for w in client.workflows()}, timeout, f"workflows {names} registered")

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.daemon.stop()
        self.redis.stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def events(client: Client, operation_id: str, timeout: float = 90.0) -> list[pb.OperationEvent]:
    """The whole history, waiting until the operation has ended (Watch ends after the terminal event)."""
    return [event.raw for event in client.watch(operation_id, reconnect_seconds=timeout)]


def first_event(
    client: Client, operation_id: str, predicate: Callable[[pb.OperationEvent], bool], timeout: float = 60.0
) -> pb.OperationEvent:
    deadline = time.monotonic() + timeout
    while True:
        try:
            for response in client.stub.Watch(
                pb.WatchRequest(operation_id=operation_id), timeout=max(0.1, deadline - time.monotonic())
            ):
                if predicate(response.event):
                    return response.event
            raise AssertionError(f"operation {operation_id} ended without the awaited event")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def assert_sound_history(history: list[pb.OperationEvent]) -> None:
    """Gap-free and legal (support.histories); each step's STEP_COMPLETED at most once; one terminal event, the last."""
    assert_legal(history)
    completed = [event.operation.current_step for event in history if event.type == pb.EVENT_TYPE_STEP_COMPLETED]
    assert len(completed) == len(set(completed)), f"a step was recorded twice: {completed}"
    assert history[-1].operation.state in TERMINAL
    assert sum(1 for event in history if event.operation.state in TERMINAL) == 1
