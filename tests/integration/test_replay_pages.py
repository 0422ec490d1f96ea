"""Event replay pages bounded in bytes, their snapshots parsed off the loop when large (server/event_rows.py), and
ListOperations reading no more values than its pages hold; on SQLite and Postgres.

Every event of an operation keeps a snapshot of it, result included: after a
step returns a large result, each later event carries it. A Watch replay must
still deliver every event in order, in pages that never load more than
`replay_page_bytes` (at least one event each). "Off the loop" is shown by
events, not timings (tests/support/loop_probe.OffLoop).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.loop_probe import OffLoop
from support.started import started_operation
from support.wire import decoded

from pausable.server import event_rows, limits, reads
from pausable.server.domain import Event, OperationFilter, Page, StepReport
from pausable.server.hub import EventHub
from pausable.server.models import EventRow
from pausable.server.store import Store
from pausable.server.watching import Watching
from pausable.v1 import operation_pb2 as pb

RESULT_BYTES = 256 << 10  # max_result_bytes here: the result below is just under it
RESULT = {"rows": [{"n": n, "name": f"row-{n:06d}"} for n in range(7_300)]}
BUDGET = 1 << 20  # replay_page_bytes here: three or four such snapshots
PROGRESS_EVENTS = 30


@pytest.fixture(autouse=True)
def small_limits() -> Iterator[None]:
    saved = limits.current
    limits.configure(replace(saved, max_result_bytes=RESULT_BYTES, replay_page_bytes=BUDGET))
    yield
    limits.configure(saved)


async def operation_with_a_large_result(store: Store) -> tuple[str, int]:
    """An operation whose first step returned RESULT, then reported progress PROGRESS_EVENTS times: (id, last seq)."""
    text = json.dumps(RESULT)
    assert RESULT_BYTES * 0.9 < len(text) <= RESULT_BYTES
    operation_id, token = await started_operation(store, requester="me")
    await store.checkpoints([StepReport(operation_id, 0, text, continued=True, step_token=token)])
    for n in range(PROGRESS_EVENTS):
        await store.report_progress(operation_id, 1, n / PROGRESS_EVENTS, f"{n}", step_token=token)
    return operation_id, (await store.get_operation(operation_id)).last_seq


async def stored_sizes(store: Store, operation_id: str) -> dict[int, int]:
    """Each event's snapshot size as the store measures it, by seq."""
    query = select(EventRow.seq, event_rows.snapshot_size(store.postgres)).where(EventRow.operation_id == operation_id)
    async with store.sessions() as session:
        return {seq: size for seq, size in (await session.execute(query)).all()}


def within_budget(pages: Sequence[Sequence[int]], sizes: dict[int, int]) -> bool:
    return all(len(page) == 1 or sum(sizes[seq] for seq in page) <= BUDGET for page in pages)


def run(url: str, scenario: Callable[[Store], Awaitable[Any]]) -> Any:
    async def opened() -> Any:
        store = await Store.open(url)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(opened())


def test_a_watch_replay_delivers_every_event_in_order_in_pages_within_the_budget(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    async def scenario(store: Store) -> None:
        operation_id, last_seq = await operation_with_a_large_result(store)
        assert last_seq == 3 + PROGRESS_EVENTS
        sizes = await stored_sizes(store, operation_id)
        assert sum(sizes.values()) > 7 * BUDGET, "one page of rows would have been far over the budget"
        pages: list[list[int]] = []
        read = store.events_after

        async def counted(operation_id: str, after_seq: int, limit: int = 500) -> Page[Event]:
            page = await read(operation_id, after_seq, limit)
            pages.append([event.seq for event in page])
            return page

        store.events_after = counted  # type: ignore[method-assign]
        seen: list[int] = []
        async for reply in Watching(store, EventHub()).follow(operation_id, 0):
            response = decoded(reply, pb.WatchResponse)
            seen.append(response.event.seq)
            if response.event.seq >= 3:
                assert json.loads(response.event.operation.result_json) == RESULT
            if response.event.seq == last_seq:
                break
        assert seen == list(range(1, last_seq + 1)), "every event, once, in order"
        assert [seq for page in pages for seq in page] == seen, "the pages follow each other without a gap"
        assert len(pages) >= 7 and within_budget(pages, sizes)
        assert all(len(page) <= BUDGET // sizes[last_seq] + 2 for page in pages)

    run(make_database(tmp_path), scenario)


def test_global_stream_pages_are_within_the_budget(tmp_path: Path, make_database: Callable[[Path], str]) -> None:
    async def scenario(store: Store) -> None:
        operation_id, last_seq = await operation_with_a_large_result(store)
        sizes = await stored_sizes(store, operation_id)
        for read in (
            lambda cursor: store.events_matching(OperationFilter(requester="me"), cursor),
            lambda cursor: store.events_with_state(cursor),
        ):
            cursor, pages = "", []
            while True:
                page = await read(cursor)
                events = [item[0] if isinstance(item, tuple) else item for item in page]
                pages.append([event.seq for event in events])
                if events:
                    cursor = events[-1].cursor
                    assert events[-1].operation.result == (RESULT if events[-1].seq >= 3 else None)
                if not page.more:
                    break
            assert [seq for page in pages for seq in page] == list(range(1, last_seq + 1))
            assert len(pages) >= 7 and within_budget(pages, sizes)

    run(make_database(tmp_path), scenario)


def test_large_snapshots_are_parsed_off_the_loop_small_ones_on_it(
    tmp_path: Path, make_database: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    types: set[type] = set()

    def large_page(rows: Sequence[Any]) -> bool:
        types.update(type(row.snapshot_text) for row in rows)
        return sum(len(row.snapshot_text) for row in rows) > 100_000

    parses = OffLoop(event_rows.events_of, large_page)

    async def scenario(store: Store) -> tuple[list[Event], list[Event], int]:
        operation_id, _last = await operation_with_a_large_result(store)
        monkeypatch.setattr(event_rows, "events_of", parses)
        small = await store.events_after(operation_id, 0, limit=2)  # CREATED, STARTED: no result yet
        large, _ = await asyncio.gather(store.events_after(operation_id, 2), parses.mark())
        return small, large, threading.get_ident()

    small, large, loop_thread = run(make_database(tmp_path), scenario)
    assert [event.seq for event in small] == [1, 2] and len(large) >= 2
    assert all(event.operation.result == RESULT for event in large)
    assert types == {str}, "the snapshot reached Python as text: no JSON processor or driver codec parsed it"
    assert not parses.blocked
    assert parses.threads[0] == loop_thread and parses.threads[1] != loop_thread


def test_list_reads_values_only_for_full_pages_and_parses_large_ones_off_the_loop(
    tmp_path: Path, make_database: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = OffLoop(reads.operations_of, lambda _rows: True)

    async def scenario(store: Store) -> int:
        for _ in range(3):
            await operation_with_a_large_result(store)
        basic = await store.list_operations(OperationFilter(), limit=10, before_id=None, values=False)
        assert len(basic) == 3 and all(op.result is None and op.input_json is None for op in basic)
        saved = limits.current
        limits.configure(replace(saved, list_page_bytes=RESULT_BYTES))
        monkeypatch.setattr(reads, "operations_of", spy)

        full, _ = await asyncio.gather(store.list_operations(OperationFilter(), limit=10, before_id=None), spy.mark())
        limits.configure(saved)
        assert [op.result for op in full] == [RESULT], "the page stopped at list_page_bytes (at least one)"
        assert full.more and full[0].id == basic[0].id
        return threading.get_ident()

    loop_thread = run(make_database(tmp_path), scenario)
    assert spy.off_the_loop(loop_thread)


def test_an_event_larger_than_the_budget_still_makes_a_page_of_its_own(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    async def scenario(store: Store) -> None:
        operation_id, last_seq = await operation_with_a_large_result(store)
        limits.configure(replace(limits.current, replay_page_bytes=1_000))  # two small events, or one large
        pages, after = [], 0
        while True:
            page = await store.events_after(operation_id, after)
            pages.append([event.seq for event in page])
            after = page[-1].seq if page else after
            if not page.more:
                break
        assert pages == [[1, 2], *([seq] for seq in range(3, last_seq + 1))]

    run(make_database(tmp_path), scenario)
