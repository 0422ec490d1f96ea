"""Steering inside a running step: stop_requested(), checkpoint(details), pause_here(details), resume_details().

A step that processes many items can stop where it is instead of at its end:

    @step
    def process(job):
        saved = resume_details() or {"next": 0, "total": 0}
        total = saved["total"]
        for i in range(saved["next"], len(job["items"])):
            if stop_requested():
                pause_here({"next": i, "total": total})  # raises StepStopped unless the stop was withdrawn
            total += work(job["items"][i])
        return {"total": total}

`stop_requested()` reads the worker process's mirror of the stop flags
(stop_flags.py): a set lookup, no round trip, so it can be called per
item. `pause_here(details)` makes one synchronous Checkpoint from inside the
step: the daemon records the step's input as the last result, saves
`details` for this step and answers in one transaction. PAUSE (the
operation is PAUSED within the step) or CANCEL: it raises `StepStopped`,
which PausableTask catches (the step ends, its chain is not forwarded).
CONTINUE (the stop was withdrawn by a Resume, or the flag was stale): it
returns and the step goes on. On Resume the same step runs again from the
start of its body, and `resume_details()` returns what it saved.

`checkpoint(details)` saves details without stopping (one synchronous call),
so a step that runs again after its worker was lost also continues from
them. Details are JSON of at most MAX_DETAILS_BYTES (64 KiB): a position, a
cursor, a running total; not the data itself.

Outside a pausable operation (a step function called directly) these do
nothing: stop_requested() is False, resume_details() None.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Task, current_task

from pausable.config import MAX_DETAILS_BYTES
from pausable.v1 import worker_pb2
from pausable.workers.link import daemon
from pausable.workers.reporter import flush
from pausable.workers.stop_flags import stop_flags
from pausable.workers.task import PausableTask, Position, StepStopped, _position, member_of

__all__ = ["StepStopped", "checkpoint", "pause_here", "resume_details", "stop_requested"]


def _running(members: bool = True) -> tuple[Task, Position] | None:
    """The running task and its position; with `members` False, None in a stage member too (details are per step)."""
    task = current_task
    if not task or task.request.called_directly or (not members and member_of(task.request) is not None):
        return None  # current_task is a proxy: false outside a task
    position = _position(task.request)
    return None if position is None else (task, position)


def _details_text(details: Any) -> str:
    try:
        text = json.dumps(details, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise TypeError(f"step details must be JSON (dicts, lists, strings, numbers, booleans, None): {error}") from None
    size = len(text.encode())
    if size > MAX_DETAILS_BYTES:
        raise ValueError(
            f"step details are {size} bytes of JSON; at most {MAX_DETAILS_BYTES} are kept: save a position or a key to "
            "continue from, not the data itself"
        )
    return text


def stop_requested() -> bool:
    """Whether a pause or cancel of this step's operation is requested: a local check, cheap enough for every item."""
    running = _running()
    return running is not None and stop_flags().stopping(running[1].operation_id)


def checkpoint(details: Any) -> None:
    """Save `details` (JSON, at most 64 KiB) for this step in the store: when it runs again (Resume after
    pause_here, or after its worker was lost) resume_details() returns them. One synchronous call; the step's
    lease runs on. Raises TypeError (not JSON) or ValueError (too large) before sending anything."""
    running = _running(members=False)
    text = _details_text(details)
    if running is None:
        return
    operation_id, step, attempt, token = running[1]
    flush()
    daemon().save_details(operation_id, step, attempt, token, text)


def resume_details() -> Any:
    """What this step saved the last time it ran (checkpoint() or pause_here()), or None: call it as the step starts.
    A stage member saves nothing: None."""
    running = _running(members=False)
    if running is None:
        return None
    operation_id, step, _attempt, token = running[1]
    text = daemon().step_details(operation_id, step, token)
    return None if text is None else json.loads(text)


def pause_here(details: Any = None) -> None:
    """Stop this step where it is, saving `details` to continue from: raises StepStopped once the daemon has
    recorded the operation PAUSED within this step (or CANCELLED). Returns when no stop is requested any more (a
    Resume withdrew it, or the flag was stale): go on working."""
    text = "" if details is None else _details_text(details)
    running = _running()
    if running is None:
        return
    task, position = running
    operation_id, step, _attempt, _token = position
    member = member_of(task.request)
    if member is not None:  # a stage member stops unfinished: Resume runs it again (no details are kept for members)
        flush()
        decision = PausableTask._ask(position, step, "", next_not_started=True, member=member)
        if decision == worker_pb2.DECISION_CONTINUE:
            return
        raise StepStopped(worker_pb2.Decision.Name(decision))
    if step == 0:
        boundary, previous_json = -1, ""  # before the first step: the operation's input stays what it was
    elif task.request.args:
        boundary, previous_json = step - 1, json.dumps(task.request.args[0])
    else:
        return  # no input to keep as the last result: this step stops at its end instead
    flush()
    decision = PausableTask._ask(position, boundary, previous_json, next_not_started=True, in_step=True, details_json=text)
    if decision == worker_pb2.DECISION_CONTINUE:
        stop_flags().forget(operation_id)
        return
    raise StepStopped(worker_pb2.Decision.Name(decision))
