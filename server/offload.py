"""One rule for work too large for the event loop: it runs in a thread, small work stays on the loop.

Measured on 2 shared cores: a hop to a thread and back (asyncio.to_thread)
costs about 60 µs at the median, 100 µs at p90, about what 250 bytes of JSON
cost to convert; above `offload_json_bytes` (8 KiB) the hop adds under 4%.
In the thread, Python-level work (building a Value, walking a value) gives
the GIL back to the loop every switch interval (5 ms); a single C call
(json.loads/dumps, a protobuf copy or serialization) keeps it for its whole
run, which is why conversions build messages in place (convert.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from pausable.server import limits

Result = TypeVar("Result")


def large(size: int) -> bool:
    """Whether `size` bytes of JSON are worth a thread (more than `offload_json_bytes`)."""
    return size > limits.current.offload_json_bytes


async def off_loop_if(is_large: bool, work: Callable[[], Result]) -> Result:
    """`work()`, in a thread when `is_large`."""
    return await asyncio.to_thread(work) if is_large else work()
