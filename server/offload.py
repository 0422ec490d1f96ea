"""One rule for work too large for the event loop: it runs in a thread, small work stays on the loop.

Measured on 2 shared cores: a hop to a thread and back (asyncio.to_thread)
costs about 60 µs at the median, 100 µs at p90, about what 250 bytes of JSON
cost to convert; above `offload_json_bytes` (8 KiB) the hop adds under 4%.
In the thread, Python-level work (building a Value, walking a value) gives
the GIL back to the loop every switch interval (5 ms); a single C call
(json.loads/dumps, a protobuf copy or serialization) keeps it for its whole
run, which is why conversions build messages in place (convert.py).

All of it runs in one thread (`off_loop`): each thread busy with Python code
asks for the GIL back every switch interval, so with several of them the
loop waits in line behind each; with one, the loop waits at most one
interval (bench/loop_lag.py: three conversion threads let a Watch replay of
1 MiB results hold the loop for over 300 ms).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pausable.server import limits

Result = TypeVar("Result")
OFFLOAD_THREAD = "pausable-offload"
_converter = ThreadPoolExecutor(max_workers=1, thread_name_prefix=OFFLOAD_THREAD)


FAVOURED_SWITCH_SECONDS = 0.001
_favouring = 0  # threads running favouring_the_loop
_default_switch = sys.getswitchinterval()
_favouring_lock = threading.Lock()


def favouring_the_loop(work: Callable[[], Result]) -> Result:
    """`work()` with the GIL handed back every 1 ms instead of CPython's 5 ms, so the event loop waits at most about
    that long while a large value converts here; the interval goes back when the work is done (and no other thread's
    favouring work still runs: the interval is the process's).

    Measured on 2 shared cores, a 1 ms timer on the loop while this thread built 1 MiB Values (4 in a row, 3 runs):
    at 5 ms its gaps were 6.3-6.7 ms at the median and 14-291 ms at most; at 1 ms, 2.2 ms and 6.5-85 ms. Kept at
    1 ms all the time, the switching cost every start: 5-10% of the StartOperation rate and 9-20% more daemon CPU
    per start (bench/paired_rates.py, two runs of 6 rounds), hence only while this thread works.
    """
    global _favouring, _default_switch
    with _favouring_lock:
        if not _favouring:
            _default_switch = sys.getswitchinterval()
            sys.setswitchinterval(FAVOURED_SWITCH_SECONDS)
        _favouring += 1
    try:
        return work()
    finally:
        with _favouring_lock:
            _favouring -= 1
            if not _favouring:
                sys.setswitchinterval(_default_switch)


def in_the_offload_thread(work: Callable[[], Result]) -> Result:
    """From a thread that is not the loop's: `work()` in the offload thread (right here when called from it), waiting
    for it. Python work there takes turns with the other conversions instead of competing with them for the GIL (two
    such threads made the loop wait 30-45 ms behind them at a large start, bench/loop_lag.py)."""
    if threading.current_thread().name.startswith(OFFLOAD_THREAD):
        return favouring_the_loop(work)
    return _converter.submit(favouring_the_loop, work).result()


def large(size: int) -> bool:
    """Whether `size` bytes of JSON are worth a thread (more than `offload_json_bytes`)."""
    return size > limits.current.offload_json_bytes


async def off_loop(work: Callable[[], Result]) -> Result:
    """`work()` in the one offload thread (with the caller's context variables, as asyncio.to_thread)."""
    run = contextvars.copy_context().run
    return await asyncio.get_running_loop().run_in_executor(_converter, lambda: run(favouring_the_loop, work))


async def off_loop_if(is_large: bool, work: Callable[[], Result]) -> Result:
    """`work()`, in the offload thread when `is_large`."""
    return await off_loop(work) if is_large else work()
