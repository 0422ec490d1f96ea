"""A thread that takes work from the event loop in batches and hands the results back.

The event loop puts (item, future) pairs on a queue; the thread takes every
item waiting at that moment (up to `max_batch`), runs `handle(items)`, and
resolves all the futures with one hop back to the loop. Used where the work
is blocking and cheaper in bulk: SQLite transactions (writer.py) and
publishing to the broker (dispatch.py).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

Item = TypeVar("Item")
Outcome = tuple[Any, BaseException | None]
log = logging.getLogger("pausable.server")


class _Entry(NamedTuple, Generic[Item]):
    item: Item
    future: asyncio.Future[Any]  # its loop (get_loop) is where the batch is answered


class BatchingThread(Generic[Item]):
    def __init__(
        self,
        name: str,
        handle: Callable[[Sequence[Item]], list[Outcome]],
        *,
        delivered: Callable[[list[Outcome]], None] | None = None,
        max_batch: int = 256,
    ) -> None:
        """`handle` returns one (result, error) per item, which its caller gets. `delivered` runs on the
        loop with the batch's outcomes once the callers are answered (they resume only on a later turn of the
        loop, so it still runs before any of them goes on)."""
        self.handle = handle
        self.delivered = delivered
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Entry[Item] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def submit(self, item: Item) -> Any:
        """Handle `item` with the next batch; its answer."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put(_Entry(item, future))
        return await future

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            try:
                outcomes = self.handle([entry.item for entry in batch])
            except Exception as error:  # noqa: BLE001 - the whole batch failed
                outcomes = [(None, error)] * len(batch)
            first.future.get_loop().call_soon_threadsafe(self._deliver, [entry.future for entry in batch], outcomes)

    def _deliver(self, futures: list[asyncio.Future[Any]], outcomes: list[Outcome]) -> None:
        """Answer every caller, then run `delivered` (which may not fail them: its errors are logged)."""
        for future, (result, error) in zip(futures, outcomes, strict=True):
            if future.cancelled():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        if self.delivered is not None:
            try:
                self.delivered(outcomes)
            except Exception:
                log.exception("%s: handing on a delivered batch failed", self._thread.name)
