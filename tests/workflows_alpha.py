"""Workflows that only the first worker of tests/integration/test_routing.py loads (from PYTHONPATH=tests).

`alpha.triple` triples a number twice; each step appends the label of the
worker that ran it (ROUTING_TEST_WORKER).
"""

from __future__ import annotations

import os
from typing import Any

from pausable.workers import step, workflow


def _tripled(state: dict[str, Any]) -> dict[str, Any]:
    return {"value": state["value"] * 3, "ran_on": [*state.get("ran_on", []), os.environ.get("ROUTING_TEST_WORKER", "")]}


@step(name="alpha.triple.step")
def triple(state: dict[str, Any]) -> dict[str, Any]:
    return _tripled(state)


workflow("alpha.triple", [triple, triple])
