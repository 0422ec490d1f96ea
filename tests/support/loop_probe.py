"""Probes of the event loop: whether work ran off it (tests), and how long it was held (bench/loop_lag.py).

`OffLoop` is what the tests assert with, structurally and without timings: it
wraps a function, records the thread of each call, and makes a large call wait
until a coroutine on the loop has run. On the loop that wait can never end (the
loop is the thread waiting), so it gives up after WAIT seconds and records that
it blocked; in a thread it returns as soon as the loop runs.

`LoopLag` is the bench's measure: a task that wakes every millisecond and
records when it woke and how long since it last did. Timings go to bench/,
never into a test's assertion.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

WAIT = 5.0


class OffLoop:
    """Wraps `real`: records each call's thread; a call judged `large` first waits for `loop_ran`."""

    def __init__(self, real: Callable[..., Any], large: Callable[..., bool]) -> None:
        self.real = real
        self.large = large
        self.loop_ran = threading.Event()
        self.threads: list[int] = []
        self.large_calls = 0
        self.blocked = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.get_ident())
        if self.large(*args, **kwargs):
            self.large_calls += 1
            if not self.loop_ran.wait(WAIT):
                self.blocked = True  # the loop could not run while this ran: it ran on the loop
        return self.real(*args, **kwargs)

    async def mark(self) -> None:
        """Run alongside the work under test: once the loop gets here, a large call waiting in a thread goes on."""
        await asyncio.sleep(0)
        self.loop_ran.set()

    def run(self, work: Awaitable[Any]) -> tuple[Any, int]:
        """`work` run on a new loop alongside `mark`: its result and the loop's thread."""

        async def both() -> tuple[Any, int]:
            result, _ = await asyncio.gather(work, self.mark())
            return result, threading.get_ident()

        self.loop_ran.clear()
        return asyncio.run(both())

    def off_the_loop(self, loop_thread: int) -> bool:
        """Whether every call ran in another thread than the loop's and none blocked it."""
        return bool(self.threads) and loop_thread not in self.threads and not self.blocked


class LoopLag:
    """Records each wake-up of a 1 ms timer on the running loop: (monotonic time, seconds since the previous one, CPU
    seconds the process used meanwhile, seconds the loop's thread waited on the run queue meanwhile).

    On a shared machine a gap also grows while the process waits for a core; the CPU seconds tell the two apart: a
    gap the process spent computing (its own threads holding the GIL) has about as much CPU time as wall time. That
    still counts another thread's CPU while the loop's thread waited for a core; its run-queue wait (Linux's
    /proc/thread-self/schedstat, 0 elsewhere) tells that apart too: the gap less that wait is what the loop waited
    for the GIL (or ran itself).
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.ticks: list[tuple[float, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-probe")

    async def _run(self) -> None:
        last, last_cpu, last_queued = time.monotonic(), time.process_time(), _queued()
        while True:
            await asyncio.sleep(self.interval)
            now, cpu, queued = time.monotonic(), time.process_time(), _queued()
            self.ticks.append((now, now - last, cpu - last_cpu, queued - last_queued))
            last, last_cpu, last_queued = now, cpu, queued

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _queued() -> float:
    """Seconds this thread has waited on the run queue for a core (Linux's schedstat), 0.0 where it cannot tell."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0
