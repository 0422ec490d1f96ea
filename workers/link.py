"""The worker's connection to the daemon: one gRPC channel per process.

Celery's prefork pool forks children; a gRPC channel must not cross a fork,
so each process makes its own on first use (pausable/per_process.py).

The control plane being down never fails a step: every call is retried,
with no time cap by default, while the daemon answers UNAVAILABLE (it is
restarting, or its store is down, locked or timing out) or
RESOURCE_EXHAUSTED, cannot be reached, or lets a call run past its
per-call `timeout` (DEADLINE_EXCEEDED: a hung call is sent again). Every
WorkerService call is safe to repeat: Checkpoint and ReportSteps carry an
attempt_id (a repeat gets the first call's answer), failing an operation
that already failed changes nothing, leases and registrations are
idempotent, and a repeated ReportProgress at worst records the same
progress twice. The caller's own mistakes (INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION, ...) are raised at once. A retried call blocks the
thread that made it (a step's worker process waits, and so does its
chain), and the link logs one warning when an outage starts and one line
when the daemon answers again, not one per retry. The policy is the shared
one of `pausable.retry`; with several replicas (see pausable.targets) a
retry lands on another one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import grpc

from pausable.clients.common import call_metadata, read_token, tls_credentials
from pausable.config import MAX_TRACEBACK_CHARS, get_settings
from pausable.per_process import PerProcess
from pausable.retry import TRANSIENT, RetryPolicy
from pausable.targets import channel_options, channel_target
from pausable.tracing import traced_channel
from pausable.v1 import operation_pb2, worker_pb2, worker_pb2_grpc

Reply = TypeVar("Reply")
log = logging.getLogger("pausable.workers")
# Every WorkerService call may be sent again (see above), so a call that ran out of time is retried too.
RETRIED = TRANSIENT | {grpc.StatusCode.DEADLINE_EXCEEDED}


class StepReport(NamedTuple):
    """A report sent in the background (workers/reporter.py): step `step` ended with `result_json`, or, with
    `next_not_started`, the boundary after it was reached and the next step dropped on a stop flag."""

    operation_id: str
    step: int
    attempt: int
    result_json: str
    step_token: str
    next_not_started: bool = False
    member: int | None = None  # the task ran this member of the stage at `step` (server/stages.py)


class DaemonLink:
    def __init__(
        self,
        target: str,
        patience: float | None = None,
        timeout: float = 10.0,
        *,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """`patience`: how long a call keeps retrying (see the module's doc); None (the default): until the daemon answers.

        `timeout`: the deadline of each attempt; a call still unanswered then is sent again.
        """
        self.target = target
        metadata = call_metadata(token)  # the worker's bearer token (role worker), when the daemon wants one
        self._extra: dict[str, Any] = {"metadata": metadata} if metadata else {}
        self.credentials = credentials  # TLS (and a client certificate) when configured
        # A short cap: once the daemon is back, every waiting report and step gets through within half a second.
        self.retry = RetryPolicy(RETRIED, patience=patience, cap=0.5)
        self.timeout = timeout
        self._down_since: float | None = None
        self._lock = threading.Lock()
        self._connection = PerProcess(self._connect)

    def _connect(self) -> tuple[grpc.Channel, worker_pb2_grpc.WorkerServiceStub]:
        address, options = channel_target(self.target), channel_options()
        raw = (
            grpc.secure_channel(address, self.credentials, options)
            if self.credentials is not None
            else grpc.insecure_channel(address, options=options)
        )
        channel = traced_channel(raw)
        return channel, worker_pb2_grpc.WorkerServiceStub(channel)

    def stub(self) -> worker_pb2_grpc.WorkerServiceStub:
        return self._connection.get()[1]

    def close(self) -> None:
        connection = self._connection.peek()
        if connection is not None:
            connection[0].close()
            self._connection = PerProcess(self._connect)

    @property
    def reachable(self) -> bool:
        """False from a call's first retryable failure until a call of this process gets an answer again."""
        return self._down_since is None

    def call(self, rpc: Callable[[worker_pb2_grpc.WorkerServiceStub], Callable[..., Reply]], request: Any) -> Reply:
        """One call under `self.retry`; each attempt takes the current process's stub (a retry may follow a fork).

        Blocks while the daemon is away (forever with no patience); raises the errors that are not retryable.
        """
        method = type(request).__name__.removesuffix("Request")
        backoff = self.retry.backoff()
        while True:
            try:
                reply = rpc(self.stub())(request, timeout=self.timeout, **self._extra)
            except grpc.RpcError as error:
                if not self.retry.retryable(error):
                    raise
                self._outage(method, error)
                delay = backoff.next_delay()
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            if self._down_since is not None:
                self._back()
            return reply

    def _outage(self, method: str, error: grpc.RpcError) -> None:
        """Log the start of an outage once (for all threads of the process), not every retry."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        code = getattr(error, "code", lambda: None)()
        details = getattr(error, "details", lambda: "")()
        log.warning(
            "the pausable daemon at %s cannot take %s now (%s: %s); this worker process waits and retries until it answers",
            self.target,
            method,
            getattr(code, "name", code),
            details,
        )

    def _back(self) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("the pausable daemon at %s answers again after %.1fs", self.target, time.monotonic() - since)

    def checkpoint(
        self,
        operation_id: str,
        step: int,
        result_json: str,
        *,
        attempt: int = 0,
        continued: bool = False,
        step_token: str = "",
        next_not_started: bool = False,
        in_step: bool = False,
        details_json: str = "",
        member: int | None = None,
    ) -> int:
        """Record the step's result (JSON text); retries carry one attempt_id, so they get the first call's answer.

        `step_token`: the pausable_step_token header of the step's message (every report presents it).
        `in_step`: sent from inside the running step (pause_here), with the `details_json` it saves.
        `member`: the task runs that member of the stage at `step`.
        """
        request = worker_pb2.CheckpointRequest(
            operation_id=operation_id,
            step=step,
            result_json=result_json,
            attempt_id=uuid.uuid4().hex,
            continued=continued,
            attempt=attempt,
            step_token=step_token,
            next_not_started=next_not_started,
            in_step=in_step,
            details_json=details_json,
            member=member,
        )
        reply = self.call(lambda s: s.Checkpoint, request)
        return reply.decision

    def report_steps(self, steps: list[StepReport]) -> None:
        """Background reports, in order, in one call: of steps whose chain went on (`continued`), and of boundaries
        before a step that was dropped on a stop flag (`next_not_started`)."""
        request = worker_pb2.ReportStepsRequest(
            steps=[
                worker_pb2.CheckpointRequest(
                    operation_id=report.operation_id,
                    step=report.step,
                    result_json=report.result_json,
                    attempt_id=uuid.uuid4().hex,
                    continued=not report.next_not_started,
                    attempt=report.attempt,
                    step_token=report.step_token,
                    next_not_started=report.next_not_started,
                    member=report.member,
                )
                for report in steps
            ]
        )
        self.call(lambda s: s.ReportSteps, request)

    def progress(
        self, operation_id: str, step: int, fraction: float, message: str, attempt: int = 0, *, step_token: str = ""
    ) -> None:
        request = worker_pb2.ReportProgressRequest(
            operation_id=operation_id, step=step, fraction=fraction, message=message, attempt=attempt, step_token=step_token
        )
        self.call(lambda s: s.ReportProgress, request)

    def fail(
        self,
        operation_id: str,
        step: int,
        code: str,
        message: str,
        step_name: str,
        attempt: int = 0,
        *,
        step_token: str = "",
        traceback: str = "",
        member: int | None = None,
    ) -> None:
        error = operation_pb2.OperationError(
            code=code, message=message, step=step, step_name=step_name, traceback=traceback[-MAX_TRACEBACK_CHARS:]
        )
        request = worker_pb2.FailOperationRequest(
            operation_id=operation_id, step=step, error=error, attempt=attempt, step_token=step_token, member=member
        )
        self.call(lambda s: s.FailOperation, request)

    def save_details(self, operation_id: str, step: int, attempt: int, step_token: str, details_json: str) -> None:
        """Keep a running step's details (JSON text) in the store, for when it runs again."""
        request = worker_pb2.SaveStepDetailsRequest(
            operation_id=operation_id, step=step, attempt=attempt, step_token=step_token, details_json=details_json
        )
        self.call(lambda s: s.SaveStepDetails, request)

    def step_details(self, operation_id: str, step: int, step_token: str) -> str | None:
        """The details (JSON text) last saved for this step, None when there are none."""
        request = worker_pb2.GetStepDetailsRequest(operation_id=operation_id, step=step, step_token=step_token)
        reply = self.call(lambda s: s.GetStepDetails, request)
        return reply.details_json if reply.found else None

    def renew_leases(self, worker: str, held: list[tuple[str, int, int, str, int]]) -> int:
        """The steps (operation, step, attempt, step token, stage member or -1) this worker holds: their leases run on."""
        steps = [
            worker_pb2.HeldStep(
                operation_id=op, step=step, attempt=attempt, step_token=token, member=member if member >= 0 else None
            )
            for op, step, attempt, token, member in held
        ]
        return int(self.call(lambda s: s.RenewLeases, worker_pb2.RenewLeasesRequest(worker=worker, steps=steps)).renewed)

    def register(self, workflows: list[operation_pb2.Workflow], worker: str) -> None:
        self.call(lambda s: s.RegisterWorkflows, worker_pb2.RegisterWorkflowsRequest(workflows=workflows, worker=worker))


_link: DaemonLink | None = None


def from_settings(patience: float | None = None) -> DaemonLink:
    """A link to PAUSABLE_DAEMON with the worker's credentials: PAUSABLE_WORKER_TOKEN (or _FILE), and TLS when configured."""
    settings = get_settings()
    return DaemonLink(
        settings.daemon,
        patience=patience,
        token=read_token(settings.worker_token, settings.worker_token_file),
        credentials=tls_credentials(settings.tls_ca, settings.tls_client_cert, settings.tls_client_key),
    )


def daemon() -> DaemonLink:
    """The process-wide link to the daemon named by PAUSABLE_DAEMON."""
    global _link
    if _link is None:
        _link = from_settings()
    return _link
