"""BatchingThread's hand-over between threads (the SQLite writer -> the publisher for a start), with plain functions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from pausable.server.batching import BatchingThread, Caller, Outcome


def test_a_relay_hands_the_caller_to_another_thread_which_answers_it() -> None:
    """The first thread's result is offered to the relay in that thread; a taken-over caller gets the answer the
    relay fixed once the second thread handled its item (whose own outcome, even an error, is not the caller's);
    results the relay declines, and items submitted without one, are answered by the first thread."""
    handled_second: list[str] = []

    def second_handle(items: Sequence[str]) -> list[Outcome]:
        handled_second.extend(items)
        return [(None, RuntimeError("the broker is away")) for _ in items]

    async def scenario() -> list[Any]:
        second: BatchingThread[str] = BatchingThread("test-second", second_handle)
        first: BatchingThread[int] = BatchingThread(
            "test-first", lambda items: [((item, "events"), None) for item in items], answer=lambda done: done[0]
        )

        def relay(result: int, caller: Caller) -> bool:
            if result % 2:
                return False
            second.take_over(f"send {result}", caller, f"answered {result}")
            return True

        try:
            return await asyncio.wait_for(asyncio.gather(*(first.submit(i, relay) for i in range(4)), first.submit(10)), 10)
        finally:
            first.close()
            second.close()

    assert asyncio.run(scenario()) == ["answered 0", 1, "answered 2", 3, 10]
    assert sorted(handled_second) == ["send 0", "send 2"]


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
