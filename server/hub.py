"""Live fan-out of committed events to Watch streams, one bounded buffer per watcher.

The hub only wakes watchers: a watcher whose buffer overflows is marked
`lagging`, stops receiving, and catches up from the store, so a slow reader
never blocks a checkpoint or another watcher and never misses an event.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field

from pausable.server.convert import event_to_pb
from pausable.server.store import Event
from pausable.v1 import operation_pb2 as pb


@dataclass(eq=False)
class LiveEvent:
    seq: int
    terminal: bool
    message: pb.WatchResponse


@dataclass(eq=False)
class Subscription:
    operation_id: str
    capacity: int
    buffer: deque[LiveEvent] = field(default_factory=deque)
    lagging: bool = False
    closed: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: LiveEvent) -> None:
        if self.lagging:
            return
        if len(self.buffer) >= self.capacity:
            self.buffer.clear()
            self.lagging = True
        else:
            self.buffer.append(event)
        self.wakeup.set()

    async def next(self) -> LiveEvent | None:
        """The next buffered event; None when lagging (read the store) or closed."""
        while not self.buffer and not self.lagging and not self.closed:
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.closed or self.lagging:
            return None
        return self.buffer.popleft()

    def resync(self) -> None:
        """Called after the watcher has read the store: take live events again."""
        self.lagging = False


class EventHub:
    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, operation_id: str) -> Subscription:
        subscription = Subscription(operation_id, self.capacity)
        self._subscribers[operation_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watchers = self._subscribers.get(subscription.operation_id)
        if watchers is not None:
            watchers.discard(subscription)
            if not watchers:
                del self._subscribers[subscription.operation_id]

    def publish(self, events: list[Event]) -> None:
        for event in events:
            watchers = self._subscribers.get(event.operation_id)
            if not watchers:
                continue
            live = LiveEvent(event.seq, event.terminal, event_to_pb(event))
            for subscription in list(watchers):
                subscription.offer(live)

    @property
    def watcher_count(self) -> int:
        return sum(len(watchers) for watchers in self._subscribers.values())

    def close_all(self) -> None:
        for watchers in self._subscribers.values():
            for subscription in watchers:
                subscription.closed = True
                subscription.wakeup.set()
