"""Workflows of tests/integration/test_stop_before_step.py (loaded from PYTHONPATH=tests).

`gated.mark` runs three steps; each appends a line to the marker file
`<dir>/<operation>.<step>` as its body starts, and step 0 then waits until
the file `<dir>/<gate>` exists. `gated.hold` keeps its worker process busy
until that process's stop-flag mirror sees operation `until_flagged`
flagged, so the step queued behind it starts only after the flag arrived.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from celery import current_task

from pausable.headers import OPERATION_HEADER
from pausable.workers import step, workflow
from pausable.workers.stop_flags import stop_flags
from pausable.workers.task import progress

PATIENCE_SECONDS = 120.0


def _until(condition: Any) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def _mark(state: dict[str, Any], number: int) -> dict[str, Any]:
    operation_id = getattr(current_task.request, OPERATION_HEADER, "")
    with open(Path(state["dir"]) / f"{operation_id}.{number}", "a") as marker:
        marker.write("ran\n")
    if number == 0 and state.get("gate"):
        progress(0.5, "waiting for the gate")
        _until((Path(state["dir"]) / state["gate"]).exists)
    return {**state, "ran": [*state.get("ran", []), number]}


@step(name="gated.mark.first")
def first(state: dict[str, Any]) -> dict[str, Any]:
    return _mark(state, 0)


@step(name="gated.mark.second")
def second(state: dict[str, Any]) -> dict[str, Any]:
    return _mark(state, 1)


@step(name="gated.mark.third")
def third(state: dict[str, Any]) -> dict[str, Any]:
    return _mark(state, 2)


workflow("gated.mark", [first, second, third])


@step(name="gated.hold.wait")
def hold(params: dict[str, Any]) -> dict[str, Any]:
    progress(0.5, "holding the worker process")
    _until(lambda: stop_flags().flagged(params["until_flagged"]))
    return params


workflow("gated.hold", [hold])
