"""The checkpointing task base: the pause point runs in the worker, after the body returns.

`PausableTask.__call__` runs the step's body, then checks the operation's
stop flag (a local copy kept in sync over Redis pub/sub, see
pausable/flags.py). With no stop flagged the chain goes on at once and the
step is reported in the background. With one
flagged, or after the last step, it makes one Checkpoint call that records
the result and answers CONTINUE, PAUSE, CANCEL or STOP; on anything but
CONTINUE it clears the request's chain, so Celery does not forward the
rest. No extra task, no extra broker hop per step.

The control plane being down never fails a step: every call to the daemon
(checkpoint, progress, the failure report) waits and retries until it
answers (see pausable/workers/link.py), blocking the step's worker process
and so its chain. While this process knows the daemon is away, a step
checkpoints synchronously instead of reporting in the background, so the
chain does not run ahead of what the daemon has recorded.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Task, current_task
from celery.signals import task_failure, worker_process_shutdown, worker_shutdown

from pausable.headers import ATTEMPT_HEADER, OPERATION_HEADER, STEP_HEADER
from pausable.v1 import worker_pb2
from pausable.workers.link import daemon
from pausable.workers.reporter import flush, reporter
from pausable.workers.stop_flags import stop_flags


def _position(request: Any) -> tuple[str, int, int] | None:
    """(operation, step, attempt) of the task running under `request`, from its pausable headers; None outside an operation."""
    operation_id = getattr(request, OPERATION_HEADER, None)
    if operation_id is None:
        return None
    return operation_id, int(getattr(request, STEP_HEADER)), int(getattr(request, ATTEMPT_HEADER, 0) or 0)


class PausableTask(Task):
    """Base class of workflow steps (use the `@step` decorator)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = super().__call__(*args, **kwargs)
        position = _position(self.request)
        if position is not None and not self.request.called_directly:
            self.checkpoint(*position, result)
        return result

    def checkpoint(self, operation_id: str, step: int, attempt: int, result: Any) -> None:
        try:
            result_json = json.dumps(result)
        except TypeError as error:
            raise TypeError(f"step {self.name} returned a value that is not JSON: {error}") from None
        if self.request.chain and daemon().reachable and not stop_flags().flagged(operation_id):
            reporter().submit(operation_id, step, attempt, result_json)
            return
        flush()
        if daemon().checkpoint(operation_id, step, result_json, attempt=attempt) == worker_pb2.DECISION_CONTINUE:
            stop_flags().forget(operation_id)
        else:
            self.request.chain = None


def progress(fraction: float, message: str = "") -> None:
    """Report progress of the running step (0.0 to 1.0); does nothing outside a pausable operation."""
    task = current_task
    position = _position(task.request) if task is not None else None
    if position is not None:
        flush()
        operation_id, step, attempt = position
        daemon().progress(operation_id, step, min(max(fraction, 0.0), 1.0), message, attempt)


@task_failure.connect
def _report_failure(sender: Task | None = None, exception: BaseException | None = None, **_: Any) -> None:
    """Any task of an operation that fails for good (after Celery's retries) fails the operation."""
    position = _position(sender.request) if sender is not None else None
    if position is not None:
        operation_id, step, attempt = position
        flush()
        daemon().fail(operation_id, step, type(exception).__name__, str(exception), sender.name, attempt)  # type: ignore[union-attr]  # position is None without a sender


@worker_process_shutdown.connect
@worker_shutdown.connect
def _flush_reports(**_: Any) -> None:
    """Send the step reports still queued before the worker process exits."""
    flush()
