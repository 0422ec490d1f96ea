"""Following events: one operation's (Watch, WaitOperation) or every matching operation's (WatchEvents).

Each replays what the store holds after the caller's position, then takes
live events from the hub; a watcher that fell behind (or was poked by
another replica) goes back to the store, so nothing is skipped or repeated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from functools import partial
from typing import Any

from pausable.server import offload
from pausable.server.convert import event_message, feed_message, feed_reply, heavy
from pausable.server.domain import Event, OperationFilter, PastTheEnd, ShuttingDown, decode_cursor
from pausable.server.encoded import Encoded
from pausable.server.hub import EventHub, LiveBuffer, Subscription
from pausable.server.states import State
from pausable.server.store import Store
from pausable.v1 import operation_pb2 as pb

REPLAY_PAGE = 500  # rows; a page is bounded in bytes too (replay_page_bytes, see event_rows)
log = logging.getLogger("pausable.server")


class Watching:
    def __init__(self, store: Store, hub: EventHub) -> None:
        self.store = store
        self.hub = hub
        # Postgres may hold back an event behind an older transaction that sends
        # no notification (see Reads.events_matching); re-read after this long.
        self.global_recheck_seconds = 1.0 if store.postgres else None
        self.feed = GlobalFeed(store, hub, hub.capacity, self.global_recheck_seconds)
        hub.global_watchers = lambda: len(self.feed.subscribers)

    async def follow(
        self, operation_id: str, after_seq: int
    ) -> AsyncGenerator[pb.WatchResponse | Encoded[pb.WatchResponse], None]:
        """The events of one operation after `after_seq`: from the store, then live; ends after the terminal one (the
        newest: a FAILED or CANCELLED that a Retry followed is replayed and the stream goes on).

        Past the end: `after_seq` = last_seq of an ended operation ends at once; `after_seq` > last_seq raises PastTheEnd
        (OUT_OF_RANGE), since events it would skip (the terminal one among them) could never end the stream.
        """
        subscription = self.hub.subscribe(operation_id)
        try:
            current = await self.store.get_operation(operation_id)
            last = after_seq
            if last > current.last_seq:
                raise PastTheEnd(
                    f"after_seq {after_seq} is past the last event of operation {operation_id}: its last seq is "
                    f"{current.last_seq} ({current.state}); watch with after_seq at most {current.last_seq}"
                )
            if current.terminal and last >= current.last_seq:
                return
            while True:
                subscription.resync()
                replayed = await self.store.events_after(operation_id, last, REPLAY_PAGE)
                for index, event in enumerate(replayed):
                    yield await event_message(event)
                    last = event.seq
                    # A terminal event followed by others was not the end: Retry revived the operation.
                    if event.terminal and index == len(replayed) - 1 and not replayed.more:
                        return
                if replayed.more:
                    continue
                while (live := await subscription.next()) is not None:
                    if live.seq <= last:
                        continue
                    if live.seq != last + 1:
                        break
                    try:
                        message = await live.response()
                    except Exception:  # noqa: BLE001 - logged by the hub; read the event from the store instead
                        break
                    yield message
                    last = live.seq
                    if live.terminal:
                        return
                if subscription.closed:
                    raise ShuttingDown(f"Watch with after_seq={last}")
        finally:
            self.hub.unsubscribe(subscription)

    async def follow_all(
        self, where: OperationFilter, cursor: str
    ) -> AsyncGenerator[pb.WatchEventsResponse | Encoded[pb.WatchEventsResponse], None]:
        """The events of every matching operation after the global `cursor`; never ends.

        Replays from the store with the filter, then takes the events the replica's one shared reader (GlobalFeed)
        reads, filtering them in memory; back to the store when it lags (its buffer overflowed) or the feed failed.
        """
        if where.created_after is not None or where.created_before is not None or where.stuck:
            raise ValueError("WatchEvents filters on states, workflow, labels and requester only")
        subscriber = await self.feed.join(where)
        try:
            last = decode_cursor(cursor)
            while True:
                subscriber.resync()
                batch = await self.store.events_matching(where, cursor, REPLAY_PAGE)
                for event in batch:
                    yield await feed_message(event)
                    cursor = event.cursor
                    last = decode_cursor(cursor)
                if batch.more:
                    continue
                while (item := await subscriber.next()) is not None:
                    if item.position <= last:
                        continue
                    yield item.message
                    cursor, last = item.event.cursor, item.position
                if subscriber.closed:
                    raise ShuttingDown(f"WatchEvents with after_cursor={cursor!r}")
        finally:
            self.feed.leave(subscriber)


def matches(where: OperationFilter, event: Event, state: State) -> bool:
    """`where` applied in memory as `Reads.events_matching` applies it in SQL: the state is the operation's current one."""
    return (not where.states or state in where.states) and matches_for_good(where, event.snapshot)


def matches_for_good(where: OperationFilter, operation: dict[str, Any]) -> bool:
    """`where` on what never changes in an operation (its snapshot): workflow, requester and labels."""
    return (
        (not where.workflow or operation["workflow"] == where.workflow)
        and (not where.requester or operation["requester"] == where.requester)
        and all(operation["labels"].get(key) == value for key, value in where.labels.items())
    )


@dataclass(eq=False)
class FeedItem:
    position: tuple[int, int]
    event: Event
    state: State
    message: pb.WatchEventsResponse | Encoded[pb.WatchEventsResponse]


def feed_items(batch: list[tuple[Event, State]]) -> list[FeedItem]:
    """The feed's items of a batch read from the store; an event that cannot be encoded is left out (and logged)."""
    items = []
    for event, state in batch:
        try:
            message = feed_reply(event)
        except Exception:
            log.exception("event %s of %s cannot be encoded; left out of WatchEvents", event.seq, event.operation_id)
            continue
        items.append(FeedItem(decode_cursor(event.cursor), event, state, message))
    return items


class FeedSubscriber(LiveBuffer[FeedItem]):
    """One WatchEvents stream's buffer of the matching events the feed read; overflowing it sends the stream back to
    the store. A stream whose filter matches nothing the feed read is not even woken."""

    def __init__(self, where: OperationFilter, capacity: int) -> None:
        super().__init__(capacity)
        self.where = where

    def offer(self, items: list[FeedItem]) -> None:
        if not self.lagging:
            self.take([item for item in items if matches(self.where, item.event, item.state)])


class GlobalFeed:
    """The one reader of the global event stream per replica: on every wake-up from the hub it reads the events after
    the newest it has read, once, and hands them to every WatchEvents subscriber (each filters in memory).

    Starts with the first subscriber at the store's newest cursor; a subscriber replays anything older itself.
    """

    def __init__(self, store: Store, hub: EventHub, capacity: int, recheck_seconds: float | None) -> None:
        self.store = store
        self.hub = hub
        self.capacity = capacity
        self.recheck_seconds = recheck_seconds
        self.subscribers: set[FeedSubscriber] = set()
        # By the workflow they filter on ("" for any): a commit is offered only to the streams that may want it.
        self.by_workflow: dict[str, set[FeedSubscriber]] = {}
        self.reads = 0  # store reads made, for tests and the bench
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def join(self, where: OperationFilter) -> FeedSubscriber:
        """A new subscriber; the feed runs from before this returns, so the caller's own store read and the feed overlap."""
        subscriber = FeedSubscriber(where, self.capacity)
        async with self._starting:
            if self._task is None or self._task.done():
                subscription = self.hub.subscribe_global(self._wanted, REPLAY_PAGE)
                try:
                    cursor = await self.store.newest_cursor()
                except BaseException:
                    self.hub.unsubscribe(subscription)
                    raise
                self._task = asyncio.create_task(self._run(subscription, cursor), name="pausable-watch-events-feed")
            self.subscribers.add(subscriber)
            self.by_workflow.setdefault(where.workflow, set()).add(subscriber)
        return subscriber

    def leave(self, subscriber: FeedSubscriber) -> None:
        """The last subscriber to leave stops the feed (the next one starts it again at the newest cursor)."""
        self.subscribers.discard(subscriber)
        group = self.by_workflow.get(subscriber.where.workflow)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self.by_workflow[subscriber.where.workflow]
        if not self.subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    def _wanted(self, event: Event) -> bool:
        """Whether a stream may want `event`, whatever its operation's state will be (see hub.GlobalSubscription)."""
        operation = event.snapshot
        return any(
            matches_for_good(subscriber.where, operation)
            for workflow in ("", operation["workflow"])
            for subscriber in self.by_workflow.get(workflow, ())
        )

    def _offer(self, items: list[FeedItem]) -> None:
        for subscriber in list(self.by_workflow.get("", ())):
            subscriber.offer(items)
        by_workflow: dict[str, list[FeedItem]] = {}
        for item in items:
            by_workflow.setdefault(item.event.snapshot["workflow"], []).append(item)
        for workflow, group in by_workflow.items():
            for subscriber in list(self.by_workflow.get(workflow, ()) if workflow else ()):
                subscriber.offer(group)

    async def _run(self, subscription: Subscription, cursor: str) -> None:
        try:
            while not subscription.closed:
                subscription.resync()
                try:
                    batch = await self.store.events_with_state(cursor, REPLAY_PAGE)
                except Exception:
                    log.exception("the WatchEvents feed could not read the store; its subscribers read it themselves")
                    for subscriber in list(self.subscribers):
                        subscriber.poke()
                    await asyncio.sleep(0.5)
                    continue
                self.reads += 1
                if batch:
                    large = any(heavy(event.operation) for event, _state in batch)
                    items = await offload.off_loop_if(large, partial(feed_items, batch))
                    cursor = batch[-1][0].cursor
                    self._offer(items)
                if batch.more:
                    continue
                try:
                    await asyncio.wait_for(subscription.next(), self.recheck_seconds)
                except TimeoutError:
                    pass
        finally:
            self.hub.unsubscribe(subscription)
            for subscriber in list(self.subscribers):
                subscriber.closed = True
                subscriber.wakeup.set()
