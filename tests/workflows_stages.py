"""Workflows of tests/integration/test_stages.py (loaded from PYTHONPATH=tests).

`stages.files` lists `count` files, maps `process_file` over them (at most 4 at a time), then merges;
`stages.wide` the same with every member sent at once. Each run of a
member adds 1 to the Redis counter `runs:<operation>:<file>`, so a test sees how often each member ran. A member
waits while the file `<dir>/hold` exists (so a pause lands while members run), and the file named in `fail` raises.
`stages.group` runs three members on the same input and combines their results; `stages.tapped` is the same with
Celery's own group in a hand-built chain passed to `tappable`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis
from celery import chain, current_task
from celery import group as celery_group

from pausable.headers import OPERATION_HEADER
from pausable.workers import app, each, group, step, tappable, workflow

PATIENCE_SECONDS = 120.0


@step(name="stages.files.list")
def list_files(params: dict[str, Any]) -> dict[str, Any]:
    files = [
        {"name": f"f{index:03d}", "dir": params["dir"], "fail": params.get("fail") == f"f{index:03d}"}
        for index in range(int(params["count"]))
    ]
    return {"files": files}


@step(name="stages.files.process")
def process_file(item: dict[str, Any]) -> dict[str, Any]:
    operation = str(getattr(current_task.request, OPERATION_HEADER, ""))
    redis.Redis.from_url(app.conf.broker_url).incr(f"runs:{operation}:{item['name']}")
    hold = Path(item["dir"]) / "hold"
    deadline = time.monotonic() + PATIENCE_SECONDS
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    if item["fail"]:
        raise ValueError(f"cannot read {item['name']}")
    return {"name": item["name"], "size": int(item["name"][1:]) * 10}


@step(name="stages.files.merge")
def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(results), "names": [r["name"] for r in results], "total": sum(r["size"] for r in results)}


workflow("stages.files", [list_files, each(process_file, over="files", max_parallel=4), merge])
workflow("stages.wide", [list_files, each(process_file, over="files"), merge])


@step(name="stages.group.double")
def double(n: int) -> int:
    return n * 2


@step(name="stages.group.square")
def square(n: int) -> int:
    return n * n


@app.task(name="stages.group.negate")
def negate(n: int) -> int:
    return -n


@step(name="stages.group.combine")
def combine(results: list[int]) -> dict[str, Any]:
    return {"results": results}


workflow("stages.group", [group(double, square, negate), combine])
workflow("stages.map", [each(double)])
# Celery's own group in a hand-built chain (chain() makes it and the task after it a chord), through tappable
workflow("stages.tapped", tappable(chain(double.s(), celery_group(square.s(), negate.s()), combine.s())))
