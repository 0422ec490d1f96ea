"""Workflows that only the second worker of tests/integration/test_routing.py loads (from PYTHONPATH=tests).

`other.double` doubles a number three times; each step appends the label of
the worker that ran it (ROUTING_TEST_WORKER), so the test can tell where
every step went. `other.missing` names a task no worker defines.
"""

from __future__ import annotations

import os
from typing import Any

from pausable.workers import app, step, workflow


def _doubled(state: dict[str, Any]) -> dict[str, Any]:
    return {"value": state["value"] * 2, "ran_on": [*state.get("ran_on", []), os.environ.get("ROUTING_TEST_WORKER", "")]}


@step(name="other.double.step")
def double(state: dict[str, Any]) -> dict[str, Any]:
    return _doubled(state)


workflow("other.double", [double, double, double])
workflow("other.missing", [app.signature("other.not_here")])
