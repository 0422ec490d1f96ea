"""WatchEvents: one shared reader per replica feeds every subscriber; each filters in memory and never misses or repeats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pausable.server.domain import Event, OperationFilter, Page, decode_cursor, encode_cursor
from pausable.server.hub import EventHub
from pausable.server.states import EventType, State
from pausable.server.watching import Watching, matches


def event(index: int, workflow: str, state: str = "RUNNING") -> Event:
    snapshot = {
        "id": f"{index:032x}", "workflow": workflow, "state": state, "current_step": 0, "total_steps": 1,
        "current_step_name": "", "progress": 0.0, "progress_message": "", "result": None, "error": None,
        "requester": "", "labels": {"team": workflow}, "create_time": 0.0, "update_time": 0.0, "end_time": None,
        "last_seq": 1,
    }  # fmt: skip
    return Event(f"{index:032x}", 1, EventType.PROGRESS, "", 0.0, snapshot, encode_cursor(index, index))


class FakeStore:
    """The reads Watching makes, in memory, counting the global ones."""

    postgres = False

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.matching_reads = 0
        self.feed_reads = 0

    def after(self, cursor: str) -> list[Event]:
        return [e for e in self.events if decode_cursor(e.cursor) > decode_cursor(cursor)]

    async def events_matching(self, where: OperationFilter, cursor: str, limit: int) -> Page[Event]:
        self.matching_reads += 1
        await asyncio.sleep(0)
        found = [e for e in self.after(cursor) if matches(where, e, e.operation.state)]
        return Page(found[:limit], more=len(found) > limit)

    async def events_with_state(self, cursor: str, limit: int) -> Page[tuple[Event, State]]:
        self.feed_reads += 1
        await asyncio.sleep(0)
        found = [(e, e.operation.state) for e in self.after(cursor)]
        return Page(found[:limit], more=len(found) > limit)

    async def newest_cursor(self) -> str:
        return self.events[-1].cursor if self.events else ""


def test_one_read_per_commit_feeds_every_subscriber() -> None:
    async def scenario() -> None:
        store, hub = FakeStore(), EventHub(capacity=64)
        watching = Watching(store, hub)  # type: ignore[arg-type]
        store.events.extend(event(i, "old") for i in range(1, 4))
        received: dict[int, list[str]] = {}

        async def follow(index: int, where: OperationFilter, count: int) -> None:
            seen = received.setdefault(index, [])
            async for response in watching.follow_all(where, ""):
                seen.append(response.event.operation.workflow + ":" + response.cursor)
                if len(seen) == count:
                    return

        everything = [asyncio.create_task(follow(i, OperationFilter(), 3 + 20)) for i in range(50)]
        only_b = [asyncio.create_task(follow(100 + i, OperationFilter(workflow="b"), 10)) for i in range(50)]
        idle = [asyncio.create_task(follow(200 + i, OperationFilter(labels={"team": "none"}), 1)) for i in range(50)]
        for _ in range(5):
            await asyncio.sleep(0)
        reads_before = store.feed_reads + store.matching_reads
        for index in range(4, 24):
            committed = event(index, "a" if index % 2 else "b")
            store.events.append(committed)
            hub.publish([committed])
            await asyncio.sleep(0.01)
        await asyncio.wait_for(asyncio.gather(*everything, *only_b), 5)
        assert all(received[i] == received[0] for i in range(50))
        assert [item.split(":")[1] for item in received[0]] == [e.cursor for e in store.events]
        assert all(received[100 + i] == [item for item in received[0] if item.startswith("b:")] for i in range(50))
        # 20 commits: about one feed read each, not one read per subscriber per commit (150 * 20).
        assert store.feed_reads + store.matching_reads - reads_before <= 2 * 20 + 100
        assert all(not received.get(200 + i) for i in range(50))
        for task in idle:
            task.cancel()
        await asyncio.gather(*idle, return_exceptions=True)
        assert not watching.feed.subscribers and watching.feed._task is None

    asyncio.run(scenario())


def test_a_lagging_subscriber_catches_up_from_the_store_without_gaps() -> None:
    async def scenario() -> None:
        store, hub = FakeStore(), EventHub(capacity=2)
        watching = Watching(store, hub)  # type: ignore[arg-type]
        seen: list[str] = []

        async def follow() -> None:
            async for response in watching.follow_all(OperationFilter(), ""):
                seen.append(response.cursor)
                if len(seen) == 30:
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(0)
        for index in range(1, 31):
            committed = event(index, "a")
            store.events.append(committed)
            if index % 7 == 0:
                hub.publish([committed])
                await asyncio.sleep(0.01)
        hub.publish([store.events[-1]])
        await asyncio.wait_for(task, 5)
        assert seen == [e.cursor for e in store.events]

    asyncio.run(scenario())


def test_commits_no_stream_can_want_cost_no_read() -> None:
    """Streams filtered on workflow "b": commits of "a" are not read until one of "b" comes (or a page of them waits),
    and that read still delivers in order, without gaps or repeats."""

    async def scenario() -> None:
        store, hub = FakeStore(), EventHub(capacity=64)
        watching = Watching(store, hub)  # type: ignore[arg-type]
        seen: list[str] = []

        async def follow() -> None:
            async for response in watching.follow_all(OperationFilter(workflow="b"), ""):
                seen.append(response.cursor)

        task = asyncio.create_task(follow())
        while not watching.feed.subscribers or store.matching_reads == 0:
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        reads = store.feed_reads
        for index in range(1, 41):
            committed = event(index, "a")
            store.events.append(committed)
            hub.publish([committed])
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert store.feed_reads == reads
        wanted = event(41, "b")
        store.events.append(wanted)
        hub.publish([wanted])
        await asyncio.wait_for(_until(lambda: seen == [wanted.cursor]), 5)
        assert store.feed_reads == reads + 1

        reads = store.feed_reads
        for index in range(42, 42 + 500):
            committed = event(index, "a")
            store.events.append(committed)
            hub.publish([committed])
        await asyncio.wait_for(_until(lambda: store.feed_reads > reads), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)
