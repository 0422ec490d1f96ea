"""Finished stage members' reports of a moment recorded together, so a large stage appends few events.

Workers report each finished member in the background, at once when no
report of theirs is on its way (workers/reporter.py), and the store appends
one MEMBER_COMPLETED per operation per transaction (Store._members). With
the daemon keeping up, that was one transaction and one event per member: a
1,000-member map of no-op tasks on 2 cores wrote 795 MEMBER_COMPLETED
events in 2.2 s (a measure with tests/workflows_stages.py's stages.map), each
sent to every watcher. Here a report is written at once when no write of
members' reports started in the last WINDOW_SECONDS; otherwise it waits for
the end of that window, with every report that comes meanwhile, and they go
to the store in one write: at most 1 / WINDOW_SECONDS events per second per
operation, each naming its members (the history stays exact). The price,
under a steady stream of members only, is up to WINDOW_SECONDS more before a
member's result, and so a stage's join, is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from pausable.server.domain import CheckpointResult, StepReport

WINDOW_SECONDS = 0.05
Record = Callable[[Sequence[StepReport]], Awaitable[list[CheckpointResult | None]]]


class MemberReports:
    def __init__(self, record: Record, window: float = WINDOW_SECONDS) -> None:
        self.record = record
        self.window = window
        self._waiting: list[tuple[Sequence[StepReport], asyncio.Future[list[CheckpointResult | None]]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._last_write = -window  # when the last write started (loop time)

    async def submit(self, reports: Sequence[StepReport]) -> list[CheckpointResult | None]:
        """Record `reports` with the others of this window; their outcomes, in order (an error: the write's)."""
        future: asyncio.Future[list[CheckpointResult | None]] = asyncio.get_running_loop().create_future()
        self._waiting.append((reports, future))
        if self._writer is None:
            delay = self._last_write + self.window - asyncio.get_running_loop().time()
            self._writer = asyncio.create_task(self._write(delay), name="pausable-member-reports")
        return await future

    async def _write(self, delay: float) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            self._last_write = asyncio.get_running_loop().time()
            self._writer = None
            batch, self._waiting = self._waiting, []
        try:
            outcomes = await self.record([report for reports, _future in batch for report in reports])
        except Exception as error:  # noqa: BLE001 - every caller of the batch gets it
            for _reports, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for reports, future in batch:
            if not future.done():
                future.set_result(outcomes[start : start + len(reports)])
            start += len(reports)
