"""Live fan-out of committed events to Watch streams, one bounded buffer per watcher.

The hub only wakes watchers: a watcher whose buffer overflows is marked
`lagging`, stops receiving, and catches up from the store, so a slow reader
never blocks a checkpoint or another watcher and never misses an event.
Events committed by another replica arrive as a `poke` (see notify.py),
which sends the operation's watchers to the store the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pausable.server import offload
from pausable.server.convert import encoded_event, event_to_pb, heavy
from pausable.server.domain import Event
from pausable.server.encoded import Encoded
from pausable.v1 import operation_pb2 as pb

log = logging.getLogger("pausable.server")
Item = TypeVar("Item")
S = TypeVar("S", bound="Subscription")


@dataclass(eq=False)
class LiveEvent:
    """A committed event for the watchers of its operation; a `heavy` one is serialized in a thread (`converting`),
    once for all of them."""

    seq: int
    terminal: bool
    message: pb.WatchResponse | Encoded[pb.WatchResponse] | None
    converting: asyncio.Future[Encoded[pb.WatchResponse]] | None = None

    @classmethod
    def of(cls, event: Event) -> LiveEvent:
        if not heavy(event.operation):
            return cls(event.seq, event.terminal, event_to_pb(event))
        converting = asyncio.ensure_future(offload.off_loop(lambda: encoded_event(event, pb.WatchResponse())))
        converting.add_done_callback(_log_failure)
        return cls(event.seq, event.terminal, None, converting)

    async def response(self) -> pb.WatchResponse | Encoded[pb.WatchResponse]:
        """The message; raises what its conversion raised. Shielded: a watcher that goes away while waiting does not
        cancel the conversion the other watchers wait on."""
        if self.message is None:
            assert self.converting is not None
            self.message = await asyncio.shield(self.converting)
        return self.message


def _log_failure(converting: asyncio.Future[Encoded[pb.WatchResponse]]) -> None:
    if not converting.cancelled() and (error := converting.exception()) is not None:
        log.error("a committed event cannot be encoded; its watchers read the store", exc_info=error)


class LiveBuffer(Generic[Item]):
    """A watcher's bounded buffer of live items; overflowing it, or a poke, sends the watcher back to the store."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffer: deque[Item] = deque()
        self.lagging = False
        self.closed = False
        self.wakeup = asyncio.Event()

    def take(self, items: Sequence[Item]) -> None:
        if self.lagging or not items:
            return
        if len(self.buffer) + len(items) > self.capacity:
            self.buffer.clear()
            self.lagging = True
        else:
            self.buffer.extend(items)
        self.wakeup.set()

    async def next(self) -> Item | None:
        """The next buffered item; None when lagging (read the store) or closed."""
        while not self.buffer and not self.lagging and not self.closed:
            self.wakeup.clear()
            await self.wakeup.wait()
        if self.closed or self.lagging:
            return None
        return self.buffer.popleft()

    def poke(self) -> None:
        """Something was committed that the buffer does not hold: read the store."""
        self.buffer.clear()
        self.lagging = True
        self.wakeup.set()

    def resync(self) -> None:
        """Called before the watcher reads the store: take live items again from here on."""
        self.lagging = False


class Subscription(LiveBuffer[LiveEvent]):
    """One Watch stream's live events of one operation."""

    def __init__(self, operation_id: str, capacity: int) -> None:
        super().__init__(capacity)
        self.operation_id = operation_id

    def offer(self, event: LiveEvent) -> None:
        self.take((event,))

    def committed(self, events: list[Event]) -> None:
        """Events were committed by this replica (a global subscription): read the store."""
        self.poke()


ALL = "*"


class GlobalSubscription(Subscription):
    """The global feed's wake-ups (see watching.GlobalFeed), which skip a store read for commits it cannot want.

    `wants` tells from an event's operation whether any stream may want it. Commits it says no to are left in the
    store, to be read with the next commit that is wanted, or once `backlog` of them wait, so that read stays about
    one page. With 1,000 idle streams of another workflow, a read per commit cost a 5-step operation +7 ms of the
    daemon's CPU (18.3 against 11.0 ms, 150 operations each, py-spy: the feed's read and its SQLite work).
    """

    def __init__(self, capacity: int, wants: Callable[[Event], bool], backlog: int) -> None:
        super().__init__(ALL, capacity)
        self.wants = wants
        self.backlog = backlog
        self.skipped = 0

    def committed(self, events: list[Event]) -> None:
        self.skipped += len(events)
        if self.skipped >= self.backlog or any(self.wants(event) for event in events):
            self.poke()

    def resync(self) -> None:
        super().resync()
        self.skipped = 0


class EventHub:
    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        # How many WatchEvents streams the global feed serves (set by watching.Watching).
        self.global_watchers: Callable[[], int] = lambda: len(self._subscribers.get(ALL, ()))

    def subscribe(self, operation_id: str) -> Subscription:
        return self._added(Subscription(operation_id, self.capacity))

    def subscribe_global(self, wants: Callable[[Event], bool], backlog: int) -> GlobalSubscription:
        """Wake-ups for every commit whose events `wants` may want (see GlobalSubscription), and every poke."""
        return self._added(GlobalSubscription(self.capacity, wants, backlog))

    def _added(self, subscription: S) -> S:
        self._subscribers[subscription.operation_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        watchers = self._subscribers.get(subscription.operation_id)
        if watchers is not None:
            watchers.discard(subscription)
            if not watchers:
                del self._subscribers[subscription.operation_id]

    def publish(self, events: list[Event]) -> None:
        """Events committed by this replica: hand them to the operation's watchers, wake the global ones."""
        for event in events:
            watchers = self._subscribers.get(event.operation_id)
            if not watchers:
                continue
            try:
                live = LiveEvent.of(event)
            except Exception:
                log.exception(
                    "operation %s: event %d cannot be encoded; its watchers read the store", event.operation_id, event.seq
                )
                self._poke(event.operation_id)
                continue
            for subscription in list(watchers):
                subscription.offer(live)
        if events:
            for subscription in list(self._subscribers.get(ALL, ())):
                subscription.committed(events)

    def poke(self, operation_id: str) -> None:
        """Events of `operation_id` were committed elsewhere: its watchers and the global ones read the store."""
        self._poke(operation_id)
        self._poke(ALL)

    def poke_all(self) -> None:
        for watchers in self._subscribers.values():
            for subscription in watchers:
                subscription.poke()

    def _poke(self, key: str) -> None:
        for subscription in list(self._subscribers.get(key, ())):
            subscription.poke()

    @property
    def watcher_count(self) -> int:
        """Watch streams, plus the WatchEvents streams behind the one shared subscription (see watching.GlobalFeed)."""
        return sum(len(watchers) for key, watchers in self._subscribers.items() if key != ALL) + self.global_watchers()

    def close_all(self) -> None:
        for watchers in self._subscribers.values():
            for subscription in watchers:
                subscription.closed = True
                subscription.wakeup.set()
