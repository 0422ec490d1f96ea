"""The state machine as pure functions (unit tests, no I/O)."""

from __future__ import annotations

import pytest

from pausable.server import states
from pausable.server.states import Decision, EventType, InvalidTransition, State


@pytest.mark.parametrize(
    ("command", "state", "expected", "dispatch"),
    [
        (states.pause, State.RUNNING, State.PAUSE_REQUESTED, False),
        (states.pause, State.PAUSE_REQUESTED, None, False),
        (states.pause, State.PAUSED, None, False),
        (states.resume, State.PAUSED, State.RUNNING, True),
        (states.resume, State.PAUSE_REQUESTED, State.RUNNING, False),
        (states.resume, State.RUNNING, None, False),
        (states.cancel, State.RUNNING, State.CANCEL_REQUESTED, False),
        (states.cancel, State.PAUSE_REQUESTED, State.CANCEL_REQUESTED, False),
        (states.cancel, State.PAUSED, State.CANCELLED, False),
        (states.cancel, State.PENDING, State.CANCELLED, False),
        (states.cancel, State.CANCELLED, None, False),
    ],
)
def test_commands(command, state: State, expected: State | None, dispatch: bool) -> None:
    transition = command(state)
    assert transition.state == expected
    assert transition.dispatch == dispatch


@pytest.mark.parametrize(
    ("command", "state"),
    [
        (states.pause, State.SUCCEEDED),
        (states.pause, State.CANCEL_REQUESTED),
        (states.resume, State.FAILED),
        (states.resume, State.CANCEL_REQUESTED),
        (states.cancel, State.SUCCEEDED),
        (states.cancel, State.FAILED),
    ],
)
def test_impossible_commands(command, state: State) -> None:
    with pytest.raises(InvalidTransition, match=str(state)):
        command(state)


def test_checkpoint_of_a_middle_step() -> None:
    assert states.checkpoint(State.RUNNING, 1, 1, 5).decision is Decision.CONTINUE
    paused = states.checkpoint(State.PAUSE_REQUESTED, 1, 1, 5)
    assert paused.decision is Decision.PAUSE and paused.transition.state is State.PAUSED and paused.record_result
    cancelled = states.checkpoint(State.CANCEL_REQUESTED, 1, 1, 5)
    assert cancelled.decision is Decision.CANCEL and cancelled.transition.state is State.CANCELLED


def test_checkpoint_of_the_last_step_finishes_even_when_a_pause_came_late() -> None:
    outcome = states.checkpoint(State.PAUSE_REQUESTED, 4, 4, 5)
    assert outcome.transition.state is State.SUCCEEDED and outcome.transition.event is EventType.SUCCEEDED
    assert "too late" in outcome.transition.message and outcome.decision is Decision.STOP


def test_stale_or_duplicate_checkpoints_change_nothing_and_stop_the_chain() -> None:
    for state, current, step in ((State.RUNNING, 3, 2), (State.PAUSED, 2, 1), (State.SUCCEEDED, 5, 4), (State.RUNNING, 1, 9)):
        outcome = states.checkpoint(state, current, step, 5)
        assert outcome.decision is Decision.STOP and outcome.transition.state is None


def test_a_checkpoint_may_skip_over_steps_that_do_not_checkpoint() -> None:
    outcome = states.checkpoint(State.RUNNING, 0, 2, 6)
    assert outcome.decision is Decision.CONTINUE and outcome.record_result


def test_a_continued_checkpoint_records_the_step_and_never_stops_the_chain() -> None:
    for state in (State.RUNNING, State.PAUSE_REQUESTED, State.CANCEL_REQUESTED):
        outcome = states.checkpoint(state, 1, 1, 5, continued=True)
        assert outcome.decision is Decision.CONTINUE and outcome.record_result
        assert outcome.transition.state is state and outcome.transition.event is EventType.STEP_COMPLETED
    assert "next step boundary" in states.checkpoint(State.PAUSE_REQUESTED, 1, 1, 5, continued=True).transition.message
    assert states.checkpoint(State.PAUSE_REQUESTED, 4, 4, 5, continued=True).transition.state is State.SUCCEEDED


def test_a_stop_before_the_next_step_started_takes_effect_at_a_boundary_already_recorded() -> None:
    """Step 1 was reported in the background (current step 2); step 2's task saw the flag before its body ran."""
    paused = states.checkpoint(State.PAUSE_REQUESTED, 2, 1, 5, next_not_started=True)
    assert paused.decision is Decision.PAUSE and paused.transition.state is State.PAUSED and not paused.record_result
    assert "after step 2/5" in paused.transition.message
    cancelled = states.checkpoint(State.CANCEL_REQUESTED, 2, 1, 5, next_not_started=True)
    assert cancelled.decision is Decision.CANCEL and cancelled.transition.state is State.CANCELLED
    stale_flag = states.checkpoint(State.RUNNING, 2, 1, 5, next_not_started=True)
    assert stale_flag.decision is Decision.CONTINUE and stale_flag.transition.state is None and not stale_flag.record_result
    first = states.checkpoint(State.PAUSE_REQUESTED, 0, -1, 5, next_not_started=True)
    assert first.decision is Decision.PAUSE and "before step 1/5" in first.transition.message


def test_a_stop_before_the_next_step_records_a_step_not_yet_reported() -> None:
    paused = states.checkpoint(State.PAUSE_REQUESTED, 1, 1, 5, next_not_started=True)
    assert paused.decision is Decision.PAUSE and paused.record_result
    running = states.checkpoint(State.RUNNING, 1, 1, 5, next_not_started=True)
    assert running.decision is Decision.CONTINUE and running.transition.event is EventType.STEP_COMPLETED


def test_a_stop_before_a_step_already_run_or_of_an_ended_operation_stops_the_chain() -> None:
    for state, current, step in ((State.PAUSE_REQUESTED, 3, 1), (State.PAUSED, 2, 1), (State.CANCELLED, 2, 1)):
        outcome = states.checkpoint(state, current, step, 5, next_not_started=True)
        assert outcome.decision is Decision.STOP and outcome.transition.state is None


def test_a_failure_counts_from_the_running_step_or_a_later_one_but_progress_only_from_the_running_step() -> None:
    """Reports of the steps before a failure may still be on their way from another worker process."""
    assert states.accepts_failure(State.RUNNING, 2, 2) and states.accepts_failure(State.PAUSE_REQUESTED, 2, 4)
    assert not states.accepts_failure(State.RUNNING, 2, 1) and not states.accepts_failure(State.PAUSED, 2, 2)
    assert states.accepts_progress(State.RUNNING, 2, 2)
    assert not states.accepts_progress(State.RUNNING, 2, 3) and not states.accepts_progress(State.RUNNING, 2, 1)


@pytest.mark.parametrize(
    ("state", "attempt", "expected"),
    [
        (State.RUNNING, 1, states.LeaseVerdict.RETRY),
        (State.RUNNING, 3, states.LeaseVerdict.GIVE_UP),
        (State.PAUSE_REQUESTED, 1, states.LeaseVerdict.SETTLE),
        (State.CANCEL_REQUESTED, 3, states.LeaseVerdict.SETTLE),
        (State.PAUSED, 1, None),
        (State.SUCCEEDED, 1, None),
    ],
)
def test_a_lapsed_lease(state: State, attempt: int, expected: states.LeaseVerdict | None) -> None:
    assert states.lapsed_lease(state, attempt, max_attempts=3) is expected


def test_a_lost_step_settles_a_requested_stop_and_is_retried_otherwise() -> None:
    assert states.settle_lost(State.PAUSE_REQUESTED, 1, 5, "worker lost").state is State.PAUSED
    assert states.settle_lost(State.CANCEL_REQUESTED, 1, 5, "worker lost").state is State.CANCELLED
    retried = states.retried(2, 5, 2, "message lost")  # the user's step number (1-based) of the count
    assert retried.state is State.RUNNING and retried.event is EventType.STEP_RETRIED and retried.dispatch
    assert retried.message == "step 2/5 runs again (attempt 2): message lost"


def test_a_forced_cancel_ends_an_active_operation_at_once_and_is_a_plain_cancel_otherwise() -> None:
    for active in (State.RUNNING, State.PAUSE_REQUESTED, State.CANCEL_REQUESTED):
        assert states.cancel_forced(active).state is State.CANCELLED
    assert states.cancel_forced(State.PAUSED) == states.cancel(State.PAUSED)
    assert states.cancel_forced(State.CANCELLED).state is None
    with pytest.raises(InvalidTransition):
        states.cancel_forced(State.SUCCEEDED)


def test_an_in_step_checkpoint_stops_within_the_running_step() -> None:
    # step 2 (plan index) runs and pauses within itself: the boundary after step 1 is recorded already
    paused = states.checkpoint(State.PAUSE_REQUESTED, 2, 1, 5, next_not_started=True, in_step=True)
    assert paused.decision is Decision.PAUSE and paused.transition.state is State.PAUSED
    assert paused.transition.message.startswith("paused within step 3/5")
    # ...or not yet recorded (its report still on its way from another process): recorded now, paused within step 3
    ahead = states.checkpoint(State.PAUSE_REQUESTED, 1, 1, 5, next_not_started=True, in_step=True)
    assert ahead.decision is Decision.PAUSE and ahead.record_result and ahead.transition.message == "paused within step 3/5"
    cancelled = states.checkpoint(State.CANCEL_REQUESTED, 2, 1, 5, next_not_started=True, in_step=True)
    assert cancelled.transition.state is State.CANCELLED
    assert states.checkpoint(State.RUNNING, 2, 1, 5, next_not_started=True, in_step=True).decision is Decision.CONTINUE


def test_a_breakpoint_pauses_the_checkpoint_that_reaches_it_and_only_that() -> None:
    numbering = states.Numbering.of([{"task": "a"}, {"task": "p", "inserted": True}, {"task": "b"}, {"task": "c"}])
    assert [numbering.boundary_before(n) for n in (1, 2, 3)] == [0, 1, 3]
    assert states.pause_before(State.RUNNING, 0, 3, 3, 3, 0).event is EventType.PAUSE_REQUESTED
    assert states.pause_before(State.RUNNING, 0, 3, 3, 3, 3).state is None  # already set
    with pytest.raises(InvalidTransition, match="already started"):
        states.pause_before(State.RUNNING, 3, 3, 3, 3, 0)
    with pytest.raises(InvalidTransition, match="Resume it first"):
        states.pause_before(State.PAUSED, 0, 3, 3, 3, 0)
    before = states.checkpoint(State.RUNNING, 1, 1, 4, numbering=numbering, pause_at=3)
    assert before.decision is Decision.CONTINUE  # reaching index 2: not yet
    reached = states.checkpoint(State.RUNNING, 2, 2, 4, numbering=numbering, pause_at=3)
    assert reached.decision is Decision.PAUSE and reached.transition.message == "paused before step 3/3 (breakpoint)"
    assert states.checkpoint(State.RUNNING, 2, 2, 4, continued=True, numbering=numbering, pause_at=3).decision is (
        Decision.CONTINUE
    )
    dropped = states.checkpoint(State.RUNNING, 3, 2, 4, numbering=numbering, next_not_started=True, pause_at=3)
    assert dropped.decision is Decision.PAUSE
    late = states.checkpoint(State.RUNNING, 3, 3, 5, numbering=states.Numbering.of([{"task": t} for t in "abcde"]), pause_at=3)
    assert late.decision is Decision.PAUSE and "was passed" in late.transition.message
    assert states.withdraw_breakpoint(State.RUNNING, 3, 3).event is EventType.RESUMED
