"""The example workflows `demo.etl`, `demo.tapped`, `demo.long` and `demo.fanout`.

`demo.etl`: five steps T1..T5, each fed the previous result; T5 saves the final result.

Input (all optional):
    rows          how many numbers to generate (default 100)
    step_seconds  how long each step takes, to make pausing by hand easy (default 1.0)
    fail_at_step  1-5: that step raises, to see a FAILED operation
    trace_file    each step appends "<operation> <step>" to this file (tests use it to prove no step ran twice)
    output_dir    T5 writes <operation>.json in this folder

trace_file and output_dir are names relative to the worker's demo folder
(setting demo_dir, PAUSABLE_DEMO_DIR, default .pausable/demo under the
worker's working directory): never absolute, never `..`, so a caller cannot
make a worker write anywhere else. The input schema refuses other names and
the steps check again (symbolic links included).

`demo.fanout`: extract lists `files` files (default 20), a map stage runs `process_file` once per file as its own
task (at most 4 at once), each taking `file_seconds` (default 0.5), and merge sums the members' results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from celery import chain, current_task

from pausable.config import get_settings
from pausable.headers import OPERATION_HEADER
from pausable.workers import (
    app,
    checkpoint,
    each,
    pause_here,
    progress,
    resume_details,
    step,
    stop_requested,
    tappable,
    workflow,
)

# A relative path of `/`-separated names, none of them `.` or `..` (nor starting with `..`), no backslash: RE2 syntax.
_NAME = r"\.?[A-Za-z0-9_-][A-Za-z0-9_.-]*"
RELATIVE_PATH = f"^{_NAME}(/{_NAME})*$"
_PATH_SCHEMA = {"type": "string", "maxLength": 255, "pattern": RELATIVE_PATH}

INPUT_SCHEMA = {
    "type": ["object", "null"],
    "properties": {
        "rows": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "step_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
        "fail_at_step": {"type": "integer", "minimum": 1, "maximum": 5},
        "trace_file": _PATH_SCHEMA,
        "output_dir": _PATH_SCHEMA,
    },
    "additionalProperties": False,
}


class StepFailed(RuntimeError):
    pass


class OutsideDemoDir(ValueError):
    """A trace_file or output_dir that is not a relative name inside the demo folder."""


def demo_path(name: str) -> Path:
    """`name` inside the worker's demo folder (created), refusing absolute paths, `..` and links leading out of it."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise OutsideDemoDir(f"{name!r} must be a relative name inside the worker's demo folder (no absolute path, no ..)")
    base = Path(get_settings().demo_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise OutsideDemoDir(f"{name!r} leads out of the worker's demo folder")
    return path


def _work(number: int, name: str, state: dict[str, Any]) -> None:
    params = state["params"]
    operation_id = getattr(current_task.request, OPERATION_HEADER, "") if current_task else ""
    if params.get("trace_file"):
        trace_path = demo_path(params["trace_file"])
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        with open(trace_path, "a") as trace:
            trace.write(f"{operation_id} {number}\n")
    seconds = float(params.get("step_seconds", 1.0))
    ticks = 4
    for tick in range(1, ticks + 1):
        time.sleep(seconds / ticks)
        progress(tick / ticks, f"T{number} {name}: {tick * 100 // ticks}%")
    if params.get("fail_at_step") == number:
        raise StepFailed(f"T{number} {name} failed on purpose (fail_at_step={number})")
    state["log"].append(f"T{number}")


@step(name="demo.etl.t1_extract")
def t1_extract(params: dict[str, Any] | None) -> dict[str, Any]:
    state: dict[str, Any] = {"params": params or {}, "log": []}
    _work(1, "extract", state)
    state["rows"] = list(range(1, int(state["params"].get("rows", 100)) + 1))
    return state


@step(name="demo.etl.t2_transform")
def t2_transform(state: dict[str, Any]) -> dict[str, Any]:
    _work(2, "transform", state)
    state["rows"] = [value * value for value in state["rows"]]
    return state


@step(name="demo.etl.t3_filter")
def t3_filter(state: dict[str, Any]) -> dict[str, Any]:
    _work(3, "filter", state)
    state["rows"] = [value for value in state["rows"] if value % 2 == 0]
    return state


@step(name="demo.etl.t4_aggregate")
def t4_aggregate(state: dict[str, Any]) -> dict[str, Any]:
    _work(4, "aggregate", state)
    rows = state.pop("rows")
    state["summary"] = {
        "count": len(rows),
        "total": sum(rows),
        "max": max(rows, default=0),
        "mean": sum(rows) / len(rows) if rows else 0.0,
    }
    return state


@step(name="demo.etl.t5_save")
def t5_save(state: dict[str, Any]) -> dict[str, Any]:
    _work(5, "save", state)
    result = {"summary": state["summary"], "steps": state["log"]}
    output_dir = state["params"].get("output_dir")
    if output_dir:
        operation_id = getattr(current_task.request, OPERATION_HEADER, "local")
        folder = demo_path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{operation_id}.json"
        path.write_text(json.dumps(result, indent=2))
        result["saved_to"] = str(path)
    return result


workflow(
    "demo.etl",
    [t1_extract, t2_transform, t3_filter, t4_aggregate, t5_save],
    description="Five-step ETL demo: extract, transform, filter, aggregate, save. Try step_seconds=2 and pause it.",
    input_schema=INPUT_SCHEMA,
)


@app.task(name="demo.tapped.add")
def add(value: int, amount: int, seconds: float = 0.0) -> int:
    """A plain Celery task: no checkpoint of its own."""
    time.sleep(seconds)
    return value + amount


workflow(
    "demo.tapped",
    tappable(chain(*(add.s(amount, seconds=0.3) for amount in (1, 2, 3, 4))), nth=2),
    description="A hand-built chain of plain tasks made pausable with the seed recipe's tappable(): pause points after every 2nd step.",
    input_schema={"type": "integer"},
)


LONG_SCHEMA = {
    "type": ["object", "null"],
    "properties": {
        "items": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
        "item_seconds": {"type": "number", "minimum": 0, "maximum": 60},
        "checkpoint_every": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": False,
}


def long_item(index: int) -> int:
    """The work on one item of demo.long: a number the total adds up."""
    return (index * index) % 1009


@step(name="demo.long.process")
def long_process(params: dict[str, Any] | None) -> dict[str, Any]:
    """Process `items` items (default 10,000), `item_seconds` each (default 0.001), stopping where it is when a pause
    or cancel is requested: pause_here saves the next item and the running total, and the run after Resume starts
    from them (resume_details). checkpoint() saves them every `checkpoint_every` items too (default 1,000), so a
    run after a lost worker does not start over either."""
    params = params or {}
    items = int(params.get("items", 10_000))
    seconds = float(params.get("item_seconds", 0.001))
    every = int(params.get("checkpoint_every", 1_000))
    saved = resume_details() or {"next": 0, "total": 0}
    start, total = int(saved["next"]), int(saved["total"])
    if start:
        progress(start / items, f"resumed at item {start}/{items}")
    for index in range(start, items):
        if stop_requested():
            pause_here({"next": index, "total": total})  # raises unless the stop was withdrawn meanwhile
        total += long_item(index)
        if seconds:
            time.sleep(seconds)
        if (index + 1) % every == 0 and index + 1 < items:
            checkpoint({"next": index + 1, "total": total})
            progress((index + 1) / items, f"item {index + 1}/{items}")
    return {"params": params, "items": items, "total": total}


@step(name="demo.long.report")
def long_report(state: dict[str, Any]) -> dict[str, Any]:
    return {"items": state["items"], "total": state["total"]}


workflow(
    "demo.long",
    [long_process, long_report],
    description="A long step over 10,000 items that pauses where it is when asked (pause_here) and resumes from the "
    "saved position. Try item_seconds=0.01, then pause and resume it.",
    input_schema=LONG_SCHEMA,
)


FANOUT_SCHEMA = {
    "type": ["object", "null"],
    "properties": {
        "files": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "file_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
    },
    "additionalProperties": False,
}


@step(name="demo.fanout.extract")
def fanout_extract(params: dict[str, Any] | None) -> dict[str, Any]:
    """Lists `files` files (default 20), each to be processed in `file_seconds` (default 0.5)."""
    params = params or {}
    seconds = float(params.get("file_seconds", 0.5))
    count = int(params.get("files", 20))
    return {"files": [{"name": f"part-{n:03d}.csv", "rows": 100 * n, "seconds": seconds} for n in range(1, count + 1)]}


@step(name="demo.fanout.process_file")
def process_file(file: dict[str, Any]) -> dict[str, Any]:
    """One member of the map stage: one file, slow enough to pause the stage while its members run."""
    time.sleep(float(file["seconds"]))
    rows = int(file["rows"])
    return {"name": file["name"], "rows": rows, "total": sum(range(rows))}


@step(name="demo.fanout.merge")
def fanout_merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Receives the members' results, in the order of the files."""
    return {
        "files": len(results),
        "rows": sum(result["rows"] for result in results),
        "total": sum(result["total"] for result in results),
    }


workflow(
    "demo.fanout",
    [fanout_extract, each(process_file, over="files", max_parallel=4), fanout_merge],
    description="Fan-out demo: extract lists 20 files, a map stage processes each as its own task (4 at a time), "
    "merge sums their results. Try file_seconds=2 and pause it while the stage runs.",
    input_schema=FANOUT_SCHEMA,
)
