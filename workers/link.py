"""The worker's connection to the daemon: one gRPC channel per process.

Celery's prefork pool forks children; a gRPC channel must not cross a fork,
so the channel is created lazily and re-created when the pid changes.
Calls are retried while the daemon is UNAVAILABLE (restarting, or briefly
unreachable) or RESOURCE_EXHAUSTED for up to `patience` seconds (None: until
it answers), so no checkpoint is dropped on the floor by a daemon restart;
the policy is the shared one of `pausable.retry`. With several replicas (see
pausable.targets) a retry lands on another one.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from pausable.config import get_settings
from pausable.retry import TRANSIENT, RetryPolicy
from pausable.targets import channel_options, channel_target
from pausable.tracing import traced_channel
from pausable.v1 import operation_pb2, worker_pb2, worker_pb2_grpc

Reply = TypeVar("Reply")


class DaemonLink:
    def __init__(self, target: str, patience: float | None = 120.0, timeout: float = 10.0) -> None:
        """`patience`: how long a call keeps retrying UNAVAILABLE and RESOURCE_EXHAUSTED; None: forever."""
        self.target = target
        self.retry = RetryPolicy(TRANSIENT, patience=patience, cap=2.0)
        self.timeout = timeout
        self._pid = -1
        self._lock = threading.Lock()
        self._stub: worker_pb2_grpc.WorkerServiceStub | None = None
        self._channel: grpc.Channel | None = None

    def stub(self) -> worker_pb2_grpc.WorkerServiceStub:
        with self._lock:
            if self._stub is None or self._pid != os.getpid():
                self._channel = traced_channel(grpc.insecure_channel(channel_target(self.target), options=channel_options()))
                self._stub = worker_pb2_grpc.WorkerServiceStub(self._channel)
                self._pid = os.getpid()
            return self._stub

    def close(self) -> None:
        with self._lock:
            if self._channel is not None and self._pid == os.getpid():
                self._channel.close()
            self._channel = self._stub = None

    def call(self, rpc: Callable[[worker_pb2_grpc.WorkerServiceStub], Callable[..., Reply]], request: Any) -> Reply:
        """One call under `self.retry`; each attempt takes the current process's stub (a retry may follow a fork)."""
        return self.retry.call(lambda: rpc(self.stub())(request, timeout=self.timeout))

    def checkpoint(self, operation_id: str, step: int, result_json: str, *, attempt: int = 0, continued: bool = False) -> int:
        """Record the step's result (JSON text); retries carry one attempt_id, so they get the first call's answer."""
        request = worker_pb2.CheckpointRequest(
            operation_id=operation_id,
            step=step,
            result_json=result_json,
            attempt_id=uuid.uuid4().hex,
            continued=continued,
            attempt=attempt,
        )
        reply = self.call(lambda s: s.Checkpoint, request)
        return reply.decision

    def report_steps(self, steps: list[tuple[str, int, int, str]]) -> None:
        """Background reports of steps whose chain went on (operation, step, attempt, result JSON), in order, in one call."""
        request = worker_pb2.ReportStepsRequest(
            steps=[
                worker_pb2.CheckpointRequest(
                    operation_id=op, step=step, result_json=result, attempt_id=uuid.uuid4().hex, continued=True, attempt=attempt
                )
                for op, step, attempt, result in steps
            ]
        )
        self.call(lambda s: s.ReportSteps, request)

    def progress(self, operation_id: str, step: int, fraction: float, message: str, attempt: int = 0) -> None:
        request = worker_pb2.ReportProgressRequest(
            operation_id=operation_id, step=step, fraction=fraction, message=message, attempt=attempt
        )
        self.call(lambda s: s.ReportProgress, request)

    def fail(self, operation_id: str, step: int, code: str, message: str, step_name: str, attempt: int = 0) -> None:
        error = operation_pb2.OperationError(code=code, message=message, step=step, step_name=step_name)
        request = worker_pb2.FailOperationRequest(operation_id=operation_id, step=step, error=error, attempt=attempt)
        self.call(lambda s: s.FailOperation, request)

    def renew_leases(self, worker: str, held: list[tuple[str, int, int]]) -> int:
        """The steps (operation, step, attempt) this worker holds: their leases run on."""
        steps = [worker_pb2.HeldStep(operation_id=op, step=step, attempt=attempt) for op, step, attempt in held]
        return int(self.call(lambda s: s.RenewLeases, worker_pb2.RenewLeasesRequest(worker=worker, steps=steps)).renewed)

    def register(self, workflows: list[operation_pb2.Workflow], worker: str) -> None:
        self.call(lambda s: s.RegisterWorkflows, worker_pb2.RegisterWorkflowsRequest(workflows=workflows, worker=worker))


_link: DaemonLink | None = None


def daemon() -> DaemonLink:
    """The process-wide link to the daemon named by PAUSABLE_DAEMON."""
    global _link
    if _link is None:
        _link = DaemonLink(get_settings().daemon)
    return _link
