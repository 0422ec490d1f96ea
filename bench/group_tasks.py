"""Tasks for the cost of a stage of parallel members (bench/group_overhead.py), run by a `pausable worker` of its own
with the default prefork pool.

`group.map_noop`: `make_items` (a list of `members` ints, from the input) then a map stage `each(noop)` over it:
one member task per item. `group.plain_noop` is the same no-op as a plain Celery task (sent as a `celery.group`).
Both sides' tasks end the same way: one RPUSH of `time.time()` to `group:ended:<key>` (the operation's id for a
member, the batch's token for a plain task), so the list's length counts the tasks that ended and its largest
value is when the last one did, without a result backend. Both go to the workflow's queue, so the same worker
processes run both sides.
"""

from __future__ import annotations

import time
from typing import Any

from broker import broker

from pausable.headers import OPERATION_HEADER
from pausable.workers import app, each, step, workflow
from pausable.workers.queues import workflow_queue

WORKFLOW = "group.map_noop"
QUEUE = workflow_queue(WORKFLOW)
ENDED = "group:ended:"


def ended(key: str) -> None:
    broker().rpush(ENDED + key, time.time())


@step(name="group.make_items")
def make_items(params: dict[str, Any] | None) -> list[int]:
    return list(range(int((params or {}).get("members", 1000))))


@step(name="group.noop", bind=True)
def noop(self: Any, value: Any) -> Any:
    ended(getattr(self.request, OPERATION_HEADER))
    return value


@app.task(name="group.plain_noop", queue=QUEUE)
def plain_noop(value: Any, token: str) -> Any:
    ended(token)
    return value


workflow(WORKFLOW, [make_items, each(noop)], description="a map stage of no-op members (group overhead bench)")
