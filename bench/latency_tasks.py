"""Steps for the latencies users feel (bench/user_latency.py), run by a `pausable worker` of its own, default pool.

`latency.sleep50`: 40 steps of 50 ms (pause latency, idle and under load).
`latency.sleep10`: 40 steps of 10 ms, each recording when it ended in
`latency:ended:<operation>`; `latency.celery_sleep10` is the same step as a
plain Celery task with a result (the baseline watcher is its
`AsyncResult.get()`), on the same queue, so the same worker runs both.
"""

from __future__ import annotations

import os
import time
from typing import Any

from broker import broker

from pausable.headers import OPERATION_HEADER
from pausable.workers import app, step, workflow
from pausable.workers.queues import workflow_queue

app.conf.result_backend = os.environ["PAUSABLE_BROKER_URL"]  # only the baseline task stores a result


def _ended(key: str) -> float:
    ended = time.time()
    broker().rpush(key, ended)
    return ended


@step(name="latency.sleep50")
def sleep50(value: Any) -> Any:
    time.sleep(0.05)
    return value


@step(name="latency.sleep10", bind=True)
def sleep10(self: Any, value: Any) -> Any:
    time.sleep(0.01)
    _ended(f"latency:ended:{getattr(self.request, OPERATION_HEADER)}")
    return value


@app.task(name="latency.celery_sleep10", queue=workflow_queue("latency.sleep10"), ignore_result=False)
def celery_sleep10(token: str) -> float:
    time.sleep(0.01)
    return _ended(f"latency:celery:{token}")


workflow("latency.sleep50", [sleep50] * 40, description="40 steps of 50 ms (pause latency)")
workflow("latency.sleep10", [sleep10] * 40, description="40 steps of 10 ms that record their end (watch delay)")
