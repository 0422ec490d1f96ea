"""The checkpointing task base: the pause point runs in the worker, after the body returns.

`PausableTask.__call__` runs the step's body, then checks the operation's
stop flag (a local copy kept in sync over Redis pub/sub, see
pausable/flags.py). With no stop flagged the chain goes on at once and the
step is reported in the background. With one
flagged, or after the last step, it makes one Checkpoint call that records
the result and answers CONTINUE, PAUSE, CANCEL or STOP; on anything but
CONTINUE it clears the request's chain, so Celery does not forward the
rest. No extra task, no extra broker hop per step.

The flag is also checked as a step starts, before its body runs: a stop
requested while the step waited on the broker (behind a busy worker, say)
then takes effect at the boundary before it, instead of after the step's
body. The task drops itself and its chain and reports the boundary in the
background, marked `next_not_started`; it does not wait for the daemon's
answer: a dropped step holds its worker process 0.2-0.3 ms instead of
the 7.6-8.9 ms of a synchronous call (medians of 600 drops in bursts of
300 Pause calls, bench/user_latency.py, 2 busy cores). Were the flag
stale, the daemon sends the dropped step again.
With no flag set, that check is a set lookup.

The control plane being down never fails a step: every call to the daemon
(checkpoint, progress, the failure report) waits and retries until it
answers (see pausable/workers/link.py), blocking the step's worker process
and so its chain. While this process knows the daemon is away, a step
checkpoints synchronously instead of reporting in the background, so the
chain does not run ahead of what the daemon has recorded.
"""

from __future__ import annotations

import json
import logging
from traceback import format_exception
from typing import Any, NamedTuple

import grpc
from celery import Task, current_task
from celery.signals import task_failure, worker_process_shutdown, worker_shutdown

from pausable.headers import ATTEMPT_HEADER, MEMBER_HEADER, OPERATION_HEADER, STEP_HEADER, STEP_TOKEN_HEADER
from pausable.v1 import worker_pb2
from pausable.workers.link import StepReport, daemon
from pausable.workers.reporter import flush, reporter
from pausable.workers.stop_flags import stop_flags

log = logging.getLogger("pausable.workers")


class Position(NamedTuple):
    """Which step of which operation a task runs, from its message's pausable headers."""

    operation_id: str
    step: int
    attempt: int
    token: str  # the dispatch's step token: every report on the step presents it


def member_of(request: Any) -> int | None:
    """The stage member the task runs (its pausable_member header, see server/stages.py); None outside a stage."""
    member = getattr(request, MEMBER_HEADER, None)
    return None if member is None else int(member)


def _position(request: Any) -> Position | None:
    """The position of the task running under `request`, from its pausable headers; None outside an operation."""
    operation_id = getattr(request, OPERATION_HEADER, None)
    if operation_id is None:
        return None
    return Position(
        operation_id,
        int(getattr(request, STEP_HEADER)),
        int(getattr(request, ATTEMPT_HEADER, 0) or 0),
        str(getattr(request, STEP_TOKEN_HEADER, "") or ""),
    )


class StepStopped(BaseException):
    """Raised by pause_here() (workers/instep.py) when the daemon stopped the running step where it is: PAUSED within
    it (Resume runs it again) or CANCELLED. PausableTask ends the step quietly (no result, no failure, the chain not
    forwarded). A BaseException, so a step's `except Exception` does not swallow it; let it propagate."""

    def __init__(self, decision: str) -> None:
        super().__init__(f"the daemon stopped this step: {decision}")
        self.decision = decision


class PausableTask(Task):
    """Base class of workflow steps (use the `@step` decorator)."""

    # Whether a stop flagged as the task starts is decided before its body runs (see may_start). tappable()'s
    # pause_or_continue turns it off: its body only passes the result on, so its pause point stays after it.
    stop_before_body = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        position = _position(self.request)
        if position is None or self.request.called_directly:
            return super().__call__(*args, **kwargs)
        if self.stop_before_body and stop_flags().flagged(position.operation_id) and not self.may_start(position, args):
            return None
        try:
            result = super().__call__(*args, **kwargs)
        except StepStopped as stopped:
            log.info("operation %s: step %d stopped within its body: %s", position.operation_id, position.step, stopped.decision)
            self.request.chain = None
            return None
        self.checkpoint(position, result)
        return result

    def may_start(self, position: Position, args: tuple[Any, ...]) -> bool:
        """A stop is flagged for this step's operation: before the body runs, report the boundary before it.

        The report carries the previous step's result (this task's input), so a pause or cancel requested while
        this step waited on the broker takes effect there, and Resume runs this step. With the flag known from the
        mirror's subscription, the task does not run: it reports in the background and clears its chain (a stale
        flag: the daemon sends the step again). Otherwise, and for a step of a later attempt (whose operation stays
        flagged while it runs) or under an ask (breakpoint) flag, it asks the daemon and runs only on CONTINUE.
        """
        operation_id, step, attempt, _ = position
        member = member_of(self.request)
        if member is not None:
            return self._member_may_start(position, member)
        if step == 0:
            boundary, previous_json = -1, ""  # before the first step: nothing to record
        elif not args:
            return True  # no input to report as the previous result: the check after the body decides
        else:
            try:
                boundary, previous_json = step - 1, json.dumps(args[0])
            except TypeError:
                return True
        if stop_flags().in_sync and attempt <= 1 and not stop_flags().asking(operation_id):
            reporter().submit(StepReport(operation_id, boundary, attempt, previous_json, position.token, next_not_started=True))
            stop_flags().forget(operation_id)
            log.info("operation %s: step %d (attempt %d) stops before its body runs", operation_id, step, attempt)
            self.request.chain = None
            return False
        # The flag may say only that Redis is away (see stop_flags), or, for a step sent again (attempt > 1), only that
        # its operation was retried (it stays flagged while active, see server/flags.py): ask, and run unless told not to.
        flush()
        decision = self._ask(position, boundary, previous_json, next_not_started=True)
        if decision == worker_pb2.DECISION_CONTINUE:
            stop_flags().forget(operation_id)
            return True
        name = worker_pb2.Decision.Name(decision)
        log.info("operation %s: step %d (attempt %d) stops before its body runs: %s", operation_id, step, attempt, name)
        self.request.chain = None
        return False

    def _member_may_start(self, position: Position, member: int) -> bool:
        """A stop is flagged for the operation of this stage member: it does not start, and the daemon sends it again
        on Resume (or at once, were the flag stale). As in may_start, a member of a later attempt, or under an ask
        flag, asks the daemon and runs on CONTINUE."""
        operation_id, step, attempt, token = position
        if stop_flags().in_sync and attempt <= 1 and not stop_flags().asking(operation_id):
            reporter().submit(StepReport(operation_id, step, attempt, "", token, next_not_started=True, member=member))
            log.info("operation %s: member %d of step %d does not start: a stop is requested", operation_id, member, step)
            self.request.chain = None
            return False
        flush()
        decision = self._ask(position, step, "", next_not_started=True, member=member)
        if decision == worker_pb2.DECISION_CONTINUE:
            return True
        self.request.chain = None
        return False

    def checkpoint(self, position: Position, result: Any) -> None:
        operation_id, step, attempt, token = position
        try:
            result_json = json.dumps(result)
        except TypeError as error:
            raise TypeError(f"step {self.name} returned a value that is not JSON: {error}") from None
        member = member_of(self.request)
        if member is not None:
            # A stage member: the daemon records it and dispatches what follows the stage once every member has
            # reported (server/stages.py), so the report never waits for an answer.
            reporter().submit(StepReport(operation_id, step, attempt, result_json, token, member=member))
            return
        if self.request.chain and daemon().reachable and not stop_flags().flagged(operation_id):
            reporter().submit(StepReport(operation_id, step, attempt, result_json, token))
            return
        flush()
        decision = self._ask(position, step, result_json)
        if decision == worker_pb2.DECISION_CONTINUE:
            stop_flags().forget(operation_id)
        else:
            self.request.chain = None

    @staticmethod
    def _ask(
        position: Position,
        step: int,
        result_json: str,
        next_not_started: bool = False,
        in_step: bool = False,
        details_json: str = "",
        member: int | None = None,
    ) -> int:
        """The synchronous Checkpoint of the boundary after `step` (of stage member `member`): the daemon's decision."""
        operation_id, _, attempt, token = position
        try:
            return daemon().checkpoint(
                operation_id,
                step,
                result_json,
                attempt=attempt,
                step_token=token,
                next_not_started=next_not_started,
                in_step=in_step,
                details_json=details_json,
                member=member,
            )
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.PERMISSION_DENIED:
                raise
            # Not this operation's current dispatch (its step was sent again, or resumed, since): stop this chain.
            log.error("operation %s step %d: %s; this chain stops here", operation_id, step, error.details())
            return worker_pb2.DECISION_STOP


def progress(fraction: float, message: str = "") -> None:
    """Report progress of the running step (0.0 to 1.0); does nothing outside a pausable operation."""
    task = current_task
    position = _position(task.request) if task else None  # current_task is a proxy: false outside a task
    if position is not None and member_of(task.request) is None:  # a stage's members show as members done
        flush()
        operation_id, step, attempt, token = position
        daemon().progress(operation_id, step, min(max(fraction, 0.0), 1.0), message, attempt, step_token=token)


@task_failure.connect
def _report_failure(sender: Task | None = None, exception: BaseException | None = None, **_: Any) -> None:
    """Any task of an operation that fails for good (after Celery's retries) fails the operation."""
    position = _position(sender.request) if sender is not None else None
    if position is not None:
        operation_id, step, attempt, token = position
        flush()
        daemon().fail(
            operation_id,
            step,
            type(exception).__name__,
            str(exception),
            sender.name,  # type: ignore[union-attr]  # position is None without a sender
            attempt,
            step_token=token,
            traceback="".join(format_exception(exception)) if exception is not None else "",
            member=member_of(sender.request),  # type: ignore[union-attr]  # position is None without a sender
        )


@worker_process_shutdown.connect
@worker_shutdown.connect
def _flush_reports(**_: Any) -> None:
    """Send the step reports still queued before the worker process exits."""
    flush()
