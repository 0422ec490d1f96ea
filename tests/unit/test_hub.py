"""The live fan-out: bounded buffers, and a slow watcher told to catch up from the store."""

from __future__ import annotations

import asyncio

from pausable.server.domain import Event
from pausable.server.hub import EventHub
from pausable.server.states import EventType


def event(seq: int, state: str = "RUNNING") -> Event:
    snapshot = {
        "id": "a" * 32, "workflow": "w", "state": state, "current_step": 0, "total_steps": 1, "current_step_name": "",
        "progress": 0.0, "progress_message": "", "result": None, "error": None, "requester": "", "labels": {},
        "create_time": 0.0, "update_time": 0.0, "end_time": None, "last_seq": seq,
    }  # fmt: skip
    return Event("a" * 32, seq, EventType.PROGRESS, "", 0.0, snapshot)


def test_events_reach_every_subscriber_in_order() -> None:
    async def scenario() -> None:
        hub = EventHub(capacity=10)
        first, second = hub.subscribe("a" * 32), hub.subscribe("a" * 32)
        hub.publish([event(1), event(2)])
        for subscription in (first, second):
            assert [(await subscription.next()).seq for _ in range(2)] == [1, 2]
        hub.unsubscribe(first)
        hub.unsubscribe(second)
        assert hub.watcher_count == 0

    asyncio.run(scenario())


def test_an_overflowing_subscriber_is_marked_lagging_and_does_not_hold_others_back() -> None:
    async def scenario() -> None:
        hub = EventHub(capacity=3)
        slow, fast = hub.subscribe("a" * 32), hub.subscribe("a" * 32)
        for seq in range(1, 5):
            hub.publish([event(seq)])
            assert (await fast.next()).seq == seq
        assert slow.lagging and await slow.next() is None, "told to read the store instead"
        slow.resync()
        hub.publish([event(5)])
        assert (await slow.next()).seq == 5

    asyncio.run(scenario())


def test_close_all_wakes_waiting_subscribers() -> None:
    async def scenario() -> None:
        hub = EventHub()
        subscription = hub.subscribe("a" * 32)
        waiter = asyncio.create_task(subscription.next())
        await asyncio.sleep(0)
        hub.close_all()
        assert await asyncio.wait_for(waiter, 5) is None

    asyncio.run(scenario())
