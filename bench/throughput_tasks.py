"""No-op steps for worker throughput at saturation (bench/worker_throughput.py), run by a `pausable worker` of its
own with the default prefork pool.

`throughput.noop10`: 10 no-op pausable steps. `throughput.plain` is the same
no-op as a plain Celery task and `throughput.plain_last` ends a plain chain
by pushing to `throughput:done:<batch>` (the plain side's one extra call per
chain, as pausable's last step makes one synchronous Checkpoint). Both go to
the workflow's queue, so the same worker processes run both sides.
"""

from __future__ import annotations

import os
from typing import Any

import redis

from pausable.workers import app, step, workflow
from pausable.workers.queues import workflow_queue

WORKFLOW = "throughput.noop10"
STEPS = 10
QUEUE = workflow_queue(WORKFLOW)


@step(name="throughput.noop")
def noop(value: Any) -> Any:
    return value


@app.task(name="throughput.plain", queue=QUEUE)
def plain(value: Any) -> Any:
    return value


@app.task(name="throughput.plain_last", queue=QUEUE)
def plain_last(value: Any, batch: str) -> Any:
    redis.Redis.from_url(os.environ["PAUSABLE_BROKER_URL"]).rpush(f"throughput:done:{batch}", 1)
    return value


workflow(WORKFLOW, [noop] * STEPS, description="10 no-op steps (worker throughput)")
