"""BatchingThread with plain functions: each caller gets its own item's outcome, errors included."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from pausable.server.batching import BatchingThread, Outcome


def test_each_caller_gets_its_own_outcome_and_the_batch_is_delivered_after_them() -> None:
    handled: list[list[int]] = []
    delivered: list[list[Outcome]] = []

    def handle(items: Sequence[int]) -> list[Outcome]:
        handled.append(list(items))
        return [(None, ValueError(f"no such row {item}")) if item < 0 else (item * 2, None) for item in items]

    async def scenario() -> list[int | BaseException]:
        thread: BatchingThread[int] = BatchingThread("test-batches", handle, delivered=delivered.append)
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(thread.submit(item) for item in (1, -1, 3)), return_exceptions=True), 10
            )
        finally:
            thread.close()

    results = asyncio.run(scenario())
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError) and "no such row -1" in str(results[1])
    assert [item for batch in handled for item in batch] == [1, -1, 3], "every item handled once, in the order submitted"
    assert sum(map(len, delivered)) == 3


def test_a_batch_whose_handler_fails_fails_each_of_its_callers() -> None:
    def handle(items: Sequence[int]) -> list[Outcome]:
        raise RuntimeError("the store is away")

    async def scenario() -> None:
        thread: BatchingThread[int] = BatchingThread("test-failing", handle)
        try:
            with pytest.raises(RuntimeError, match="the store is away"):
                await asyncio.wait_for(thread.submit(1), 10)
        finally:
            thread.close()

    asyncio.run(scenario())
