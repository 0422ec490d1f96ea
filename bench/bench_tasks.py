"""Tasks and workflows the benchmarks run in a real `celery worker` (imported by name from bench/)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from pausable.headers import OPERATION_HEADER, STEP_HEADER
from pausable.workers import app, progress, step, workflow

STEPS = 100


@step(name="bench.noop")
def noop(value: Any) -> Any:
    return value


@app.task(name="bench.plain")
def plain(value: Any) -> Any:
    return value


@app.task(name="bench.seed_pause_or_continue")
def seed_pause_or_continue(value: Any) -> Any:
    """The seed recipe's extra task after every step, with a clause that says "go on"."""
    return value


@app.task(name="bench.plain_done")
def plain_done(value: Any, token: str) -> Any:
    """Ends a plain chain: tells the benchmark, which waits on this Redis list."""
    redis.Redis.from_url(os.environ["PAUSABLE_BROKER_URL"]).rpush(f"bench:done:{token}", time.time())
    return value


@step(name="bench.sleep50", bind=True)
def sleep50(self: Any, value: Any) -> Any:
    """Sleeps 50 ms, then records when it ended (so the pause-latency bench knows the time left in the step)."""
    time.sleep(0.05)
    redis.Redis.from_url(os.environ["PAUSABLE_BROKER_URL"]).rpush(
        f"bench:ended:{getattr(self.request, OPERATION_HEADER)}", time.time()
    )
    return value


workflow("bench.noop100", [noop] * STEPS, description="100 no-op steps")
workflow("bench.noop5", [noop] * 5, description="5 no-op steps (watchevents)")
workflow("bench.sleep50", [sleep50] * 40, description="40 steps of 50 ms, to pause")


@step(name="bench.hold", bind=True)
def hold(self: Any, value: Any) -> Any:
    """Records which worker process holds it (bench:holder:<operation>:<step>), then runs for 2 s, reporting progress."""
    broker = redis.Redis.from_url(os.environ["PAUSABLE_BROKER_URL"])
    broker.set(f"bench:holder:{getattr(self.request, OPERATION_HEADER)}:{getattr(self.request, STEP_HEADER)}", os.getpid())
    for tick in range(1, 5):
        time.sleep(0.5)
        progress(tick / 4)
    return value


workflow("bench.recover", [hold, hold, hold])
