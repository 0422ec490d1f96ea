"""The in-step API outside a running operation (a step function called directly, in a test): it does nothing, and
details that could not be stored are refused before anything is sent."""

from __future__ import annotations

import pytest

from pausable.config import MAX_DETAILS_BYTES
from pausable.workers import checkpoint, pause_here, progress, resume_details, stop_requested


def test_outside_an_operation_nothing_stops_nothing_was_saved_and_pause_here_returns() -> None:
    assert stop_requested() is False
    assert resume_details() is None
    assert pause_here({"next": 3}) is None
    assert checkpoint({"next": 3}) is None
    assert progress(0.5, "outside") is None  # documented to do nothing there (it raised outside any task)


def test_details_must_be_json_of_at_most_64_kib() -> None:
    with pytest.raises(TypeError, match="must be JSON"):
        checkpoint({"when": object()})
    with pytest.raises(ValueError, match=f"at most {MAX_DETAILS_BYTES}"):
        pause_here({"rows": "x" * MAX_DETAILS_BYTES})
