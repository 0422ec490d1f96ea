"""Options the direct message path does not carry: those steps are left to Celery's send_task."""

from __future__ import annotations

from typing import Any

import pytest

from pausable.server import celery_message


@pytest.mark.parametrize(
    "options",
    [
        {"exchange": "x"},
        {"routing_key": "r"},
        {"link": {"task": "t"}},
        {"countdown": 5},
        {"queue": ""},
        {"queue": None},
        {"priority": True},
        {"priority": "5"},
        {"headers": ["h"]},
    ],
)
def test_other_options_are_left_to_celery(options: dict[str, Any]) -> None:
    assert not celery_message.supports(options)
