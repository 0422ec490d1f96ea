"""BatchingThread's posted work (queued from any thread, nobody waits), with plain functions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from pausable.server.batching import BatchingThread, Outcome


def test_posted_work_runs_with_no_caller_and_its_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    done: list[int] = []

    def handle(items: Sequence[int]) -> list[Outcome]:
        done.extend(items)
        return [(None, ValueError("no such row")) if item < 0 else (item, None) for item in items]

    async def scenario() -> int:
        thread: BatchingThread[int] = BatchingThread("test-posts", handle)
        try:
            thread.post(-1)
            thread.post(5)
            return int(await asyncio.wait_for(thread.submit(7), 10))
        finally:
            thread.close()

    with caplog.at_level(logging.WARNING, logger="pausable.server"):
        assert asyncio.run(scenario()) == 7
    assert done == [-1, 5, 7]
    assert "no such row" in caplog.text
