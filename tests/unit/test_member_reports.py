"""Finished members' reports of a moment go to the store in one write (server/member_reports.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from pausable.server.domain import CheckpointResult, StepReport
from pausable.server.member_reports import MemberReports
from pausable.server.states import Decision, State


def report(member: int) -> StepReport:
    return StepReport("op", 1, str(member), member=member)


def test_reports_of_one_window_are_one_write_and_each_caller_gets_its_own_outcomes() -> None:
    writes: list[list[int]] = []

    async def record(reports: Sequence[StepReport]) -> list[CheckpointResult | None]:
        writes.append([r.member or 0 for r in reports])
        return [CheckpointResult(Decision.CONTINUE, State.RUNNING, attempt=r.member or 0) for r in reports]

    async def main() -> None:
        coalescer = MemberReports(record, window=0.2)
        first = await coalescer.submit([report(0)])  # nothing written lately: at once
        assert [o.attempt for o in first if o is not None] == [0]
        batches = await asyncio.gather(*(coalescer.submit([report(m), report(m + 10)]) for m in (1, 2, 3)))
        assert [[o.attempt for o in batch if o is not None] for batch in batches] == [[1, 11], [2, 12], [3, 13]]

    asyncio.run(main())
    assert writes == [[0], [1, 11, 2, 12, 3, 13]]


def test_a_failed_write_fails_every_caller_of_its_window() -> None:
    async def record(reports: Sequence[StepReport]) -> list[CheckpointResult | None]:
        raise ConnectionError("store away")

    async def main() -> None:
        coalescer = MemberReports(record, window=0.05)
        results = await asyncio.gather(*(coalescer.submit([report(m)]) for m in range(3)), return_exceptions=True)
        assert all(isinstance(result, ConnectionError) for result in results)
        with pytest.raises(ConnectionError):
            await coalescer.submit([report(9)])  # and the next window writes again

    asyncio.run(main())
