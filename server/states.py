"""The operation state machine, as pure functions over the current state.

The store applies these decisions inside one transaction holding the
operation's row lock, so every transition is a compare-and-set.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any


class State(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSE_REQUESTED = "PAUSE_REQUESTED"
    PAUSED = "PAUSED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class EventType(enum.StrEnum):
    CREATED = "CREATED"
    STARTED = "STARTED"
    STEP_COMPLETED = "STEP_COMPLETED"
    STEP_RETRIED = "STEP_RETRIED"
    RETRIED = "RETRIED"
    PROGRESS = "PROGRESS"
    PAUSE_REQUESTED = "PAUSE_REQUESTED"
    PAUSED = "PAUSED"
    RESUMED = "RESUMED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    CANCELLED = "CANCELLED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STAGE_STARTED = "STAGE_STARTED"
    MEMBER_COMPLETED = "MEMBER_COMPLETED"
    STAGE_COMPLETED = "STAGE_COMPLETED"


class Command(enum.StrEnum):
    """What a client asks of an operation (Pause, Resume, Cancel, Retry)."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"
    FORCE_CANCEL = "force_cancel"  # Cancel(force=true): at once, the running step terminated


class Decision(enum.StrEnum):
    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    CANCEL = "CANCEL"
    STOP = "STOP"


TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
ACTIVE = frozenset({State.RUNNING, State.PAUSE_REQUESTED, State.CANCEL_REQUESTED})


class InvalidTransition(Exception):
    """The requested change is impossible from the current state (FAILED_PRECONDITION)."""


@dataclass(frozen=True)
class Transition:
    """What a command does: the new state (None: nothing changes), the event, and whether to dispatch."""

    state: State | None
    event: EventType | None = None
    message: str = ""
    dispatch: bool = False


NOTHING = Transition(None)


def pause(state: State) -> Transition:
    if state in (State.RUNNING, State.PENDING):
        return Transition(State.PAUSE_REQUESTED, EventType.PAUSE_REQUESTED, "pause takes effect at the next step boundary")
    if state in (State.PAUSE_REQUESTED, State.PAUSED):
        return NOTHING
    raise InvalidTransition(f"cannot pause an operation that is {state}; only RUNNING (or PENDING) operations can be paused")


def resume(state: State) -> Transition:
    if state is State.PAUSED:
        return Transition(State.RUNNING, EventType.RESUMED, "resumed; the remaining steps were dispatched", dispatch=True)
    if state is State.PAUSE_REQUESTED:
        return Transition(State.RUNNING, EventType.RESUMED, "pause withdrawn before it took effect")
    if state in (State.RUNNING, State.PENDING):
        return NOTHING
    raise InvalidTransition(f"cannot resume an operation that is {state}; only PAUSED operations can be resumed")


def cancel(state: State) -> Transition:
    if state in (State.PAUSED, State.PENDING):
        return Transition(State.CANCELLED, EventType.CANCELLED, f"cancelled while {state}")
    if state in (State.RUNNING, State.PAUSE_REQUESTED):
        return Transition(State.CANCEL_REQUESTED, EventType.CANCEL_REQUESTED, "cancel takes effect at the next step boundary")
    if state in (State.CANCEL_REQUESTED, State.CANCELLED):
        return NOTHING
    raise InvalidTransition(f"cannot cancel an operation that already {state}")


def retry(state: State) -> Transition:
    """A FAILED or CANCELLED operation runs again from its current step (the one that failed or was interrupted)."""
    if state in (State.FAILED, State.CANCELLED):
        return Transition(
            State.RUNNING, EventType.RETRIED, f"retried after it was {state}; the remaining steps were dispatched", dispatch=True
        )
    raise InvalidTransition(
        f"cannot retry an operation that is {state}; only FAILED or CANCELLED operations can be retried "
        "(Resume a PAUSED one; Fork any operation to run it again from a step of your choice)"
    )


def accepts_new_input(state: State) -> None:
    """Resume(input=...) replaces the result the next step receives: only while PAUSED, when no step runs."""
    if state is not State.PAUSED:
        raise InvalidTransition(
            f"cannot resume with a new input an operation that is {state}; only a PAUSED operation's next input can be "
            "replaced (wait until it is PAUSED, or Resume without input)"
        )


def fork_start(from_step: int, numbering: Numbering) -> int:
    """The plan index of the user's step `from_step` (1-based), where a fork starts; ValueError when there is none.
    Plans without inserted entries: from_step - 1."""
    count = numbering.count
    if not 1 <= from_step <= count:
        raise ValueError(f"from_step is {from_step}; send a user step from 1 to {count} (Operation.total_steps)")
    seen = 0
    for index, counts in enumerate(numbering.counted):
        seen += counts
        if counts and seen == from_step:
            return index
    raise ValueError(f"from_step {from_step} is not a step of this plan")


def cancel_forced(state: State) -> Transition:
    """Cancel(force=true): an active operation is CANCELLED at once (the engine then terminates its running step, and
    any report that step still sends finds it ended); a PAUSED or PENDING one is cancelled as by a plain Cancel."""
    if state in ACTIVE:
        return Transition(
            State.CANCELLED, EventType.CANCELLED, f"cancelled by force while {state}; the running step is being terminated"
        )
    return cancel(state)


def pause_before(state: State, current_step: int, boundary: int, number: int, count: int, pending: int) -> Transition:
    """Pause(before_step=`number`): a breakpoint at plan index `boundary` (Numbering.boundary_before), where the
    operation, now at plan index `current_step`, pauses when it gets there. Only a RUNNING operation takes one."""
    if state is not State.RUNNING and state is not State.PENDING:
        raise InvalidTransition(
            f"cannot set a breakpoint on an operation that is {state}; only a RUNNING operation can pause before a later step"
            + (" (Resume it first)" if state in (State.PAUSED, State.PAUSE_REQUESTED) else "")
        )
    if current_step >= boundary:
        raise InvalidTransition(
            f"step {number}/{count} has already started or finished; pick a later step for before_step, "
            "or Pause without before_step to stop at the next step boundary"
        )
    if pending == number:
        return NOTHING
    return Transition(
        State.RUNNING, EventType.PAUSE_REQUESTED, f"pause requested before step {number}/{count}: it takes effect there"
    )


def withdraw_breakpoint(state: State, pending: int, count: int) -> Transition:
    """Resume of a RUNNING operation whose breakpoint has not taken effect withdraws it."""
    if state is State.RUNNING and pending:
        return Transition(State.RUNNING, EventType.RESUMED, f"breakpoint before step {pending}/{count} withdrawn")
    return NOTHING


@dataclass(frozen=True)
class CheckpointOutcome:
    decision: Decision
    transition: Transition
    record_result: bool = False


def command(kind: Command, state: State) -> Transition:
    return {
        Command.PAUSE: pause,
        Command.RESUME: resume,
        Command.CANCEL: cancel,
        Command.RETRY: retry,
        Command.FORCE_CANCEL: cancel_forced,
    }[kind](state)


@dataclass(frozen=True)
class Numbering:
    """How users count an operation's steps.

    A plan entry marked `"inserted": true` (a `pause_or_continue` pause point
    `tappable` put between the user's tasks, the closing `pausable.finish`)
    runs like any other but is not one of the user's steps: the steps are
    the unmarked entries, numbered from 1. A plan with no unmarked entry
    counts every entry. Plans carry no marks from workers older than the
    mark, nor in operations started before it: every entry counts there.
    """

    names: tuple[str, ...]
    counted: tuple[bool, ...]
    staged: tuple[bool, ...] = ()  # which entries are stages of parallel members (stages.py)

    @classmethod
    def of(cls, plan: Sequence[Mapping[str, Any]]) -> Numbering:
        counted = tuple(entry.get("inserted") is not True for entry in plan)
        staged = tuple("stage" in entry for entry in plan)
        return cls(tuple(str(entry["task"]) for entry in plan), counted if any(counted) else (True,) * len(counted), staged)

    def is_stage(self, index: int) -> bool:
        """Whether plan entry `index` is a stage (its members run in parallel, the daemon joins them)."""
        return 0 <= index < len(self.staged) and self.staged[index]

    @cached_property
    def _before(self) -> tuple[int, ...]:
        """How many of the user's steps come before each plan index (len(plan) + 1 entries)."""
        before = [0]
        for counts in self.counted:
            before.append(before[-1] + counts)
        return tuple(before)

    @property
    def count(self) -> int:
        """How many steps the user sees (Operation.total_steps)."""
        return self._before[-1]

    def counts(self, index: int) -> bool:
        """Whether plan entry `index` is one of the user's steps."""
        return 0 <= index < len(self.counted) and self.counted[index]

    def done(self, index: int) -> int:
        """How many of the user's steps have finished once plan entry `index` has."""
        return self._before[min(max(index + 1, 0), len(self.counted))]

    def number(self, index: int) -> int:
        """The 1-based user step at plan index `index` (Operation.step_number): the one running there, or the next one
        after inserted entries; the last once all have finished (`index` at the plan's end); 0 without steps."""
        return min(self._before[min(max(index, 0), len(self.counted))] + 1, self.count)

    def produced_by(self, index: int) -> str:
        """The task name of the user step whose result plan entry `index` passes on: the entry itself, or, for an
        inserted entry, the last user step before it ("" when none)."""
        for at in range(min(index, len(self.counted) - 1), -1, -1):
            if self.counted[at]:
                return self.names[at]
        return ""

    def boundary_before(self, number: int) -> int:
        """The plan index where a pause before the user's step `number` (1-based) stops: right after the user's step
        before it, so the entries inserted between them run after the Resume."""
        for index, before in enumerate(self._before):
            if before >= number - 1:
                return index
        return len(self.counted)

    def name(self, index: int) -> str:
        """The task name of the user step `number(index)` (Operation.current_step_name); empty once all have finished."""
        for at in range(max(index, 0), len(self.counted)):
            if self.counted[at]:
                return self.names[at]
        return ""


def checkpoint(
    state: State,
    current_step: int,
    step: int,
    total_steps: int,
    continued: bool = False,
    numbering: Numbering | None = None,
    next_not_started: bool = False,
    in_step: bool = False,
    pause_at: int = -1,
) -> CheckpointOutcome:
    """Decide what the end of plan entry `step` means for an operation at `current_step` (`total_steps`: the plan's length).

    `step` may lie ahead of `current_step` when the steps between are plain
    Celery tasks that do not checkpoint (or their background reports are
    still on the way). A checkpoint for a step already recorded comes from a
    redelivered task or a chain that should have stopped: it changes nothing
    and the chain is told to stop, so nothing downstream runs twice.

    A `continued` checkpoint was reported after the worker forwarded the
    chain (it saw no stop flag, see pausable/flags.py): it is recorded, and a
    requested pause or cancel waits for the next boundary.

    Messages count the user's steps (`numbering`, default: every entry). An
    inserted entry that goes on finishes none of them: its STEP_COMPLETED
    was the user's step before it, so it adds no event.

    A `next_not_started` checkpoint comes from the task of step `step` + 1
    before its body runs (its worker saw a stop flag): when `step` is
    already recorded (`current_step` is `step` + 1), the stop still takes
    effect at this boundary, and Resume runs step `step` + 1.

    An `in_step` checkpoint (also `next_not_started`) comes from inside step
    `step` + 1 (pause_here): a stop takes effect within it, and Resume runs it again.

    `pause_at`: the plan index of a breakpoint (Pause(before_step)), -1 for none: a RUNNING operation whose synchronous
    checkpoint reaches it pauses there (one that went past it while the worker's flag was on its way, at the
    boundary reached).
    """
    numbering = numbering or Numbering(("",) * total_steps, (True,) * total_steps)
    if next_not_started and state in ACTIVE and step == current_step - 1:
        if state is State.RUNNING and 0 <= pause_at <= current_step and not in_step:
            return _breakpoint(pause_at, current_step, numbering, "; the next step had not started")
        within = numbering.number(step + 1) if in_step else 0
        return boundary_not_crossed(state, numbering.done(step), numbering.count, within)
    if state not in ACTIVE or step < current_step or step >= total_steps:
        return CheckpointOutcome(Decision.STOP, NOTHING)
    if step == total_steps - 1:
        late = {
            State.PAUSE_REQUESTED: "pause requested too late: the last step was already running; the operation finished",
            State.CANCEL_REQUESTED: "cancel requested too late: the last step was already running; the operation finished",
        }.get(state, "all steps finished")
        return CheckpointOutcome(Decision.STOP, Transition(State.SUCCEEDED, EventType.SUCCEEDED, late), True)
    number, count = numbering.done(step), numbering.count
    done = step_done(number, count)
    if continued:
        if not numbering.counts(step):
            return CheckpointOutcome(Decision.CONTINUE, Transition(state), True)
        waiting = {
            State.PAUSE_REQUESTED: "; the pause takes effect at the next step boundary",
            State.CANCEL_REQUESTED: "; the cancel takes effect at the next step boundary",
        }
        return CheckpointOutcome(
            Decision.CONTINUE, Transition(state, EventType.STEP_COMPLETED, done + waiting.get(state, "")), True
        )
    where = f"within step {numbering.number(step + 1)}/{count}" if in_step else f"after step {number}/{count}"
    if state is State.PAUSE_REQUESTED:
        return CheckpointOutcome(Decision.PAUSE, Transition(State.PAUSED, EventType.PAUSED, f"paused {where}"), True)
    if state is State.CANCEL_REQUESTED:
        return CheckpointOutcome(Decision.CANCEL, Transition(State.CANCELLED, EventType.CANCELLED, f"cancelled {where}"))
    if state is State.RUNNING and 0 <= pause_at <= step + 1 and not in_step:
        outcome = _breakpoint(pause_at, step + 1, numbering)
        return CheckpointOutcome(outcome.decision, outcome.transition, True)
    if not numbering.counts(step):
        return CheckpointOutcome(Decision.CONTINUE, Transition(State.RUNNING), True)
    return CheckpointOutcome(Decision.CONTINUE, Transition(State.RUNNING, EventType.STEP_COMPLETED, done), True)


def _breakpoint(pause_at: int, reached: int, numbering: Numbering, note: str = "") -> CheckpointOutcome:
    """A RUNNING operation reached plan index `reached` with a breakpoint at `pause_at`: PAUSED there."""
    count = numbering.count
    if reached == pause_at:
        message = f"paused before step {numbering.number(reached)}/{count} (breakpoint){note}"
    else:
        message = (
            f"paused after step {numbering.done(reached - 1)}/{count}: the breakpoint before step "
            f"{numbering.number(pause_at)}/{count} was passed while the workers' stop flag was on its way"
        )
    return CheckpointOutcome(Decision.PAUSE, Transition(State.PAUSED, EventType.PAUSED, message))


def boundary_not_crossed(state: State, done: int, count: int, within: int = 0) -> CheckpointOutcome:
    """A stop at a boundary already recorded, after `done` of the user's `count` steps, whose next step has not started
    (or, `within` > 0, was stopped from inside by pause_here: user step `within`)."""
    where = f"after step {done}/{count}" if done > 0 else f"before step 1/{count}"
    if within:
        pause_where = f"within step {within}/{count}; Resume runs it again from its saved details"
        if state is State.PAUSE_REQUESTED:
            return CheckpointOutcome(Decision.PAUSE, Transition(State.PAUSED, EventType.PAUSED, f"paused {pause_where}"))
        if state is State.CANCEL_REQUESTED:
            return CheckpointOutcome(
                Decision.CANCEL, Transition(State.CANCELLED, EventType.CANCELLED, f"cancelled within step {within}/{count}")
            )
        return CheckpointOutcome(Decision.CONTINUE, NOTHING)
    if state is State.PAUSE_REQUESTED:
        return CheckpointOutcome(
            Decision.PAUSE, Transition(State.PAUSED, EventType.PAUSED, f"paused {where}; the next step had not started")
        )
    if state is State.CANCEL_REQUESTED:
        return CheckpointOutcome(
            Decision.CANCEL, Transition(State.CANCELLED, EventType.CANCELLED, f"cancelled {where}; the next step had not started")
        )
    return CheckpointOutcome(Decision.CONTINUE, NOTHING)


def step_done(number: int, count: int) -> str:
    """The message of STEP_COMPLETED: the user's step `number` (1-based) of `count`."""
    return f"step {number}/{count} done"


def accepts_progress(state: State, current_step: int, step: int) -> bool:
    """Progress counts only from the step that is running now."""
    return state in ACTIVE and step == current_step


def accepts_failure(state: State, current_step: int, step: int) -> bool:
    """A failure counts from the running step or a later one: the reports of the steps before may still be on the way
    (sent in the background by another worker process). `step` -1 is a failure outside any step."""
    return state in ACTIVE and (step < 0 or step >= current_step)


def progress(state: State, current_step: int, step: int, message: str) -> Transition:
    if not accepts_progress(state, current_step, step):
        return NOTHING
    return Transition(state, EventType.PROGRESS, message)


def fail(state: State, current_step: int, step: int, code: str, message: str) -> Transition:
    if not accepts_failure(state, current_step, step):
        return NOTHING
    return Transition(State.FAILED, EventType.FAILED, f"{code}: {message}")


def check_deletable(operation_id: str, state: State) -> None:
    """Only finished operations may be deleted: nothing can report on them any more."""
    if not state.terminal:
        raise InvalidTransition(
            f"operation {operation_id} is {state}; only finished operations (SUCCEEDED, FAILED, CANCELLED) "
            "can be deleted: cancel it first and wait until it is CANCELLED"
        )


class LeaseVerdict(enum.Enum):
    """What a lapsed step lease means (see lapsed_lease)."""

    RETRY = "retry"
    GIVE_UP = "give up"
    SETTLE = "settle"


def lapsed_lease(state: State, attempt: int, max_attempts: int) -> LeaseVerdict | None:
    """The current step's lease lapsed: no live worker holds it and no message for it waits on the broker.

    A requested stop is settled at once (PAUSED, the step to run again on
    Resume; or CANCELLED), since nothing is left to reach a boundary;
    otherwise the step runs again with a new attempt until `max_attempts`.
    """
    if state not in ACTIVE:
        return None
    if state is not State.RUNNING:
        return LeaseVerdict.SETTLE
    return LeaseVerdict.RETRY if attempt < max_attempts else LeaseVerdict.GIVE_UP


def settle_lost(state: State, number: int, count: int, reason: str) -> Transition:
    """A stop requested of an operation whose running step (the user's `number` of `count`) was lost takes effect now."""
    if state is State.PAUSE_REQUESTED:
        return Transition(State.PAUSED, EventType.PAUSED, f"paused at step {number}/{count}: {reason}; Resume runs it again")
    if state is State.CANCEL_REQUESTED:
        return Transition(State.CANCELLED, EventType.CANCELLED, f"cancelled at step {number}/{count}: {reason}")
    return NOTHING


def retried(number: int, count: int, attempt: int, reason: str) -> Transition:
    return Transition(
        State.RUNNING,
        EventType.STEP_RETRIED,
        f"step {number}/{count} runs again (attempt {attempt}): {reason}",
        dispatch=True,
    )
