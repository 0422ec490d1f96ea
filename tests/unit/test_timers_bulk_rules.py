"""The pure rules of deadlines, pause timeouts (server/timers.py) and bulk actions (server/bulk.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pausable.server import bulk, timers
from pausable.server.domain import OperationFilter
from pausable.server.states import Command, EventType, State

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_deadline_clock_stands_still_while_paused() -> None:
    budget = 10.0
    used, due = 0.0, at(10)  # started at T0
    used, due = timers.clock(State.RUNNING, State.PAUSE_REQUESTED, budget, used, due, at(3))
    assert (used, due) == (0.0, at(10)), "a pause requested still runs"
    used, due = timers.clock(State.PAUSE_REQUESTED, State.PAUSED, budget, used, due, at(4))
    assert (used, due) == (4.0, None)
    assert timers.used_seconds(budget, used, due, at(1000)) == 4.0
    used, due = timers.clock(State.PAUSED, State.RUNNING, budget, used, due, at(100))
    assert (used, due) == (4.0, at(106))
    assert timers.used_seconds(budget, used, due, at(101)) == 5.0
    used, due = timers.clock(State.RUNNING, State.SUCCEEDED, budget, used, due, at(102))
    assert (used, due) == (6.0, None)
    assert timers.clock(State.RUNNING, State.PAUSED, None, 0.0, None, at(1)) == (0.0, None), "no budget, no clock"


def test_a_passed_deadline_asks_a_running_operation_to_cancel() -> None:
    for state in (State.RUNNING, State.PAUSE_REQUESTED):
        transition = timers.deadline_passed(state, 10, 10.4)
        assert transition is not None and transition.state is State.CANCEL_REQUESTED
        assert transition.event is EventType.CANCEL_REQUESTED and transition.message.startswith("deadline exceeded: ran 10.4s")
    for state in (State.CANCEL_REQUESTED, State.PAUSED, State.SUCCEEDED):
        assert timers.deadline_passed(state, 10, 11) is None
    error = timers.deadline_error(2, "demo.etl.t2_transform", 1, 10)
    assert timers.finished_in_time(State.SUCCEEDED, error) and not timers.finished_in_time(State.CANCELLED, error)


def test_a_pause_timeout_is_due_once_paused_and_resumes_or_cancels() -> None:
    assert timers.pause_due(State.PAUSE_REQUESTED, 60, None, T0) is None
    assert timers.pause_due(State.PAUSED, 60, None, T0) == at(60)
    assert timers.pause_due(State.PAUSED, 60, at(5), T0) == at(5), "an armed timer keeps its time"
    assert timers.keeps_pause_timeout(State.PAUSED) and not timers.keeps_pause_timeout(State.RUNNING)
    resumed = timers.pause_timed_out(State.PAUSED, timers.OnTimeout.RESUME, 60)
    assert resumed is not None and resumed.state is State.RUNNING and resumed.dispatch
    assert resumed.message == "pause timed out after 60s: resumed automatically"
    cancelled = timers.pause_timed_out(State.PAUSED, timers.OnTimeout.CANCEL, 60)
    assert cancelled is not None and cancelled.state is State.CANCELLED
    assert timers.pause_timed_out(State.RUNNING, timers.OnTimeout.CANCEL, 60) is None


@pytest.mark.parametrize(
    ("kind", "state", "expected"),
    [
        (Command.PAUSE, State.RUNNING, State.PAUSE_REQUESTED),
        (Command.PAUSE, State.PAUSED, "already PAUSED"),
        (Command.PAUSE, State.SUCCEEDED, "SUCCEEDED: cannot pause"),
        (Command.RESUME, State.PAUSED, State.RUNNING),
        (Command.CANCEL, State.PAUSED, State.CANCELLED),
        (Command.CANCEL, State.CANCELLED, "already CANCELLED"),
    ],
)
def test_a_bulk_verdict_is_a_transition_or_a_skip_reason(kind: Command, state: State, expected: State | str) -> None:
    verdict = bulk.verdict(kind, state)
    assert (verdict if isinstance(verdict, str) else verdict.state) == expected


def test_a_selector_round_trips_bounded_to_the_actions_creation() -> None:
    where = OperationFilter(states=[State.RUNNING], workflow="demo.etl", labels={"team": "data"}, created_after=at(-60))
    stored = bulk.selector_json(where)
    back = bulk.selector_filter(stored, T0)
    assert back.states == [State.RUNNING] and back.workflow == "demo.etl" and back.labels == {"team": "data"}
    assert back.created_after == at(-60) and back.created_before == T0
    assert bulk.selector_filter({**stored, "created_before": at(-30).isoformat()}, T0).created_before == at(-30)


def test_the_final_counts_add_up_to_matched() -> None:
    assert bulk.reconciled(10, 6, 1, 1, {"already PAUSED": 1}) == (
        10,
        3,
        {"already PAUSED": 1, bulk.NO_LONGER_MATCHED: 2},
    )
    assert bulk.reconciled(10, 11, 0, 0, {}) == (11, 0, {})
    assert bulk.request_hash(Command.PAUSE, ["a"], None, "") != bulk.request_hash(Command.CANCEL, ["a"], None, "")
