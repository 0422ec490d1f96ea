"""Workflows of tests/integration/test_instep.py (loaded from PYTHONPATH=tests).

`instep.count` adds up i*i over `items` items in one step that checks stop_requested() per item, saves its place
with checkpoint() every 10 items and stops with pause_here() (its run after Resume starts from resume_details()).
With `hold_at`, its first run waits at that item until a stop is requested, so a pause lands there.
`instep.sleeper` sleeps 60 s without ever checking for a stop, after writing its step token to `<dir>/<operation>`.
`instep.quick` returns at once. `instep.four` runs four steps, each marking `<dir>/<operation>.<n>`; step 1 waits
for the file `<dir>/<gate>` when given one, and step `hold_step` waits until its process's stop-flag mirror sees the
operation flagged (a breakpoint's flag), so the pause before the step after it is decided at that step's end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from celery import current_task

from pausable.headers import OPERATION_HEADER, STEP_TOKEN_HEADER
from pausable.workers import checkpoint, pause_here, progress, resume_details, step, stop_requested, workflow
from pausable.workers.stop_flags import stop_flags

PATIENCE_SECONDS = 120.0


def _until(condition: Any) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def _operation() -> str:
    return str(getattr(current_task.request, OPERATION_HEADER, ""))


@step(name="instep.count.items")
def count_items(params: dict[str, Any]) -> dict[str, Any]:
    items, hold_at = int(params["items"]), int(params.get("hold_at", -1))
    saved = resume_details()
    start, total = (int(saved["next"]), int(saved["total"])) if saved else (0, 0)
    if saved is not None:
        progress(start / items, f"resumed at item {start}")
    for index in range(start, items):
        if index == hold_at and saved is None:
            progress(index / items, f"holding at item {index}")
            _until(stop_requested)
        if stop_requested():
            pause_here({"next": index, "total": total})
        total += index * index
        if index % 10 == 9:
            checkpoint({"next": index + 1, "total": total})
    return {"items": items, "total": total}


@step(name="instep.count.report")
def count_report(state: dict[str, Any]) -> dict[str, Any]:
    return {"items": state["items"], "total": state["total"]}


workflow("instep.count", [count_items, count_report])


@step(name="instep.sleeper.sleep")
def sleep(params: dict[str, Any]) -> dict[str, Any]:
    (Path(params["dir"]) / _operation()).write_text(str(getattr(current_task.request, STEP_TOKEN_HEADER, "")))
    progress(0.0, "sleeping")
    time.sleep(60)
    return params


workflow("instep.sleeper", [sleep])


@step(name="instep.quick.return")
def quick(params: Any) -> Any:
    return params


workflow("instep.quick", [quick])


def _four(state: dict[str, Any], number: int) -> dict[str, Any]:
    folder = Path(state["dir"])
    with open(folder / f"{_operation()}.{number}", "a") as marker:
        marker.write("ran\n")
    if number == 1 and state.get("gate"):
        progress(0.5, "waiting for the gate")
        _until((folder / state["gate"]).exists)
    if number == state.get("hold_step"):
        operation_id = _operation()
        _until(lambda: stop_flags().flagged(operation_id))
    return {**state, "ran": [*state.get("ran", []), number]}


@step(name="instep.four.one")
def four_one(state: dict[str, Any]) -> dict[str, Any]:
    return _four(state, 1)


@step(name="instep.four.two")
def four_two(state: dict[str, Any]) -> dict[str, Any]:
    return _four(state, 2)


@step(name="instep.four.three")
def four_three(state: dict[str, Any]) -> dict[str, Any]:
    return _four(state, 3)


@step(name="instep.four.four")
def four_four(state: dict[str, Any]) -> dict[str, Any]:
    return _four(state, 4)


workflow("instep.four", [four_one, four_two, four_three, four_four])
