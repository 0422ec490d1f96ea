"""Time rules, as pure functions over an operation's state and times (no I/O): the running-time budget and the pause timeout.

**Deadline.** StartOperation(deadline) gives a budget of *running* time.
The clock runs while the operation is active (RUNNING, PAUSE_REQUESTED,
CANCEL_REQUESTED) and stands still while it is PAUSED: it is kept as the
seconds used before the current run (`used`) and, while running, the moment
the budget runs out (`at`), which every replica's sweep looks for (indexed).
When it runs out the operation is asked to cancel (CANCEL_REQUESTED, error
DEADLINE_EXCEEDED) and ends CANCELLED at its next step boundary; had its last
step already been running, it SUCCEEDS as with any late cancel, and the
error is cleared.

**Pause timeout.** Pause(timeout, on_timeout) keeps the timeout with the
operation; once it is PAUSED the due time is set (`pause_due_at`, indexed),
and a sweep resumes or cancels it then. Leaving PAUSED (a Resume, a Cancel)
or withdrawing the pause clears it. Both times are in the store, so a daemon
restart loses no timer: whichever replica is alive acts.
"""

from __future__ import annotations

import enum
from dataclasses import replace
from datetime import datetime, timedelta

from pausable.server.states import ACTIVE, State, Transition, cancel, resume

DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
MIN_SECONDS = 1.0
MAX_SECONDS = 366 * 24 * 3600.0


class OnTimeout(enum.StrEnum):
    """What a pause timeout does (operations.pause_on_timeout)."""

    RESUME = "resume"
    CANCEL = "cancel"


def clock(
    before: State, after: State, budget: float | None, used: float, at: datetime | None, now: datetime
) -> tuple[float, datetime | None]:
    """(used, at) once the operation goes from `before` to `after`: the clock stops on leaving the active states
    (PAUSED, or the end) and starts again on entering them."""
    if budget is None:
        return used, at
    running_before, running_after = before in ACTIVE, after in ACTIVE
    if running_before and not running_after and at is not None:
        return used_seconds(budget, used, at, now), None
    if running_after and not running_before and at is None:
        return used, now + timedelta(seconds=max(budget - used, 0.0))
    return used, at


def used_seconds(budget: float | None, used: float, at: datetime | None, now: datetime) -> float:
    """The running time used so far: all of `used` while stopped, plus the time since the run started while running."""
    if budget is None or at is None:
        return used
    return max(budget - (at - now).total_seconds(), 0.0)


def deadline_passed(state: State, budget: float, used: float) -> Transition | None:
    """The budget ran out: a cancel at the next step boundary (None when the operation is no longer running, or is
    cancelling already)."""
    if state not in (State.RUNNING, State.PAUSE_REQUESTED):
        return None
    return replace(
        cancel(state),
        message=f"deadline exceeded: ran {used:.1f}s of its {budget:g}s budget; the cancel takes effect at the next step boundary",
    )


def deadline_error(number: int, step_name: str, current_step: int, budget: float) -> dict[str, object]:
    return {
        "code": DEADLINE_EXCEEDED,
        "message": f"the running-time budget of {budget:g}s ran out (time PAUSED not counted)",
        "step": current_step,
        "step_name": step_name,
        "step_number": number,
    }


def pause_due(after: State, timeout: float | None, due: datetime | None, now: datetime) -> datetime | None:
    """When a pause timeout falls due once the operation is `after` (None: no timer)."""
    if timeout is None or after is not State.PAUSED:
        return None
    return due if due is not None else now + timedelta(seconds=timeout)


def keeps_pause_timeout(after: State) -> bool:
    """A pause timeout lives while the pause is requested or in effect; any other state clears it."""
    return after in (State.PAUSE_REQUESTED, State.PAUSED)


def pause_timed_out(state: State, on_timeout: OnTimeout, timeout: float) -> Transition | None:
    """A PAUSED operation nobody resumed within `timeout`: resumed (its remaining steps dispatched) or cancelled."""
    if state is not State.PAUSED:
        return None
    if on_timeout is OnTimeout.RESUME:
        return replace(resume(state), message=f"pause timed out after {timeout:g}s: resumed automatically")
    return replace(cancel(state), message=f"pause timed out after {timeout:g}s: cancelled automatically")


def finished_in_time(after: State, error: dict[str, object] | None) -> bool:
    """A DEADLINE_EXCEEDED error recorded on the cancel request goes when the operation succeeds after all (the
    cancel came too late: its last step was running)."""
    return after is State.SUCCEEDED and bool(error) and (error or {}).get("code") == DEADLINE_EXCEEDED
