"""Workflows of tests/integration/test_history.py (loaded from PYTHONPATH=tests).

`history.calc` runs four arithmetic steps on `n`; its result depends only on
what each step receives, so a fork gives the same result as its parent.
Step 1 waits for the file `gate` (when given) so a test can pause after it;
step 2 declares an input schema (`n` an integer); step 3 fails until the
file `flag` exists (when given), so a retry after creating it passes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pausable.workers import step, workflow
from pausable.workers.task import progress

PATIENCE_SECONDS = 120.0


@step(name="history.calc.one")
def one(state: dict[str, Any]) -> dict[str, Any]:
    if state.get("gate"):
        progress(0.5, "waiting for the gate")
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not Path(state["gate"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return {**state, "n": state["n"] + 1}


@step(
    name="history.calc.two",
    input_schema={"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
)
def two(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "n": state["n"] * 2}


@step(name="history.calc.three")
def three(state: dict[str, Any]) -> dict[str, Any]:
    if state.get("flag") and not Path(state["flag"]).exists():
        raise RuntimeError(f"the flag {state['flag']} is not set yet")
    return {**state, "n": state["n"] + 3}


@step(name="history.calc.four")
def four(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "n": state["n"] * 10}


workflow("history.calc", [one, two, three, four])
