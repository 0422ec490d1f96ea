"""A start whose input breaks the workflow's schema in several ways hears of every way (bounded), not only the first."""

from __future__ import annotations

import pytest

from pausable.server import validation
from pausable.server.errors import InvalidArgument
from pausable.workers.examples.demo import INPUT_SCHEMA


def test_every_violation_is_reported() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validation.workflow_input("demo.etl", {"rows": "many", "step_seconds": -1, "extra": 1}, INPUT_SCHEMA)
    message = str(raised.value)
    assert "at rows: 'many' is not of type 'integer'" in message
    assert "at step_seconds: -1 is less than the minimum of 0" in message
    assert "Additional properties are not allowed ('extra' was unexpected)" in message


def test_the_report_is_bounded() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validation.workflow_input("w", ["x"] * 10_000, {"type": "array", "items": {"type": "integer"}})
    message = str(raised.value)
    assert message.count("is not of type 'integer'") == validation.SCHEMA_ERRORS_SHOWN
    assert "and 40+ more" in message and len(message) < 5_000
