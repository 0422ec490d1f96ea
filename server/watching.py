"""Following events: one operation's (Watch, WaitOperation) or every matching operation's (WatchEvents).

Each replays what the store holds after the caller's position, then takes
live events from the hub; a watcher that fell behind (or was poked by
another replica) goes back to the store, so nothing is skipped or repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from pausable.server.convert import event_to_pb
from pausable.server.domain import OperationFilter, ShuttingDown
from pausable.server.hub import ALL, EventHub
from pausable.server.store import Store
from pausable.v1 import operation_pb2 as pb

REPLAY_PAGE = 500


class Watching:
    def __init__(self, store: Store, hub: EventHub) -> None:
        self.store = store
        self.hub = hub
        # Postgres may hold back an event behind an older transaction that sends
        # no notification (see Reads.events_matching); re-read after this long.
        self.global_recheck_seconds = 1.0 if store.postgres else None

    async def follow(self, operation_id: str, after_seq: int) -> AsyncGenerator[pb.WatchResponse, None]:
        """The events of one operation after `after_seq`: from the store, then live; ends after the terminal one."""
        subscription = self.hub.subscribe(operation_id)
        try:
            current = await self.store.get_operation(operation_id)
            last = after_seq
            if current.terminal and last >= current.last_seq:
                return
            while True:
                subscription.resync()
                replayed = await self.store.events_after(operation_id, last, REPLAY_PAGE)
                for event in replayed:
                    yield event_to_pb(event)
                    last = event.seq
                    if event.terminal:
                        return
                if len(replayed) == REPLAY_PAGE:
                    continue
                while (live := await subscription.next()) is not None:
                    if live.seq <= last:
                        continue
                    if live.seq != last + 1:
                        break
                    yield live.message
                    last = live.seq
                    if live.terminal:
                        return
                if subscription.closed:
                    raise ShuttingDown(f"Watch with after_seq={last}")
        finally:
            self.hub.unsubscribe(subscription)

    async def follow_all(self, where: OperationFilter, cursor: str) -> AsyncGenerator[pb.WatchEventsResponse, None]:
        """The events of every matching operation after the global `cursor`; never ends."""
        subscription = self.hub.subscribe(ALL)
        try:
            while True:
                subscription.resync()
                batch = await self.store.events_matching(where, cursor, REPLAY_PAGE)
                for event in batch:
                    yield pb.WatchEventsResponse(event=event_to_pb(event).event, cursor=event.cursor)
                    cursor = event.cursor
                if len(batch) == REPLAY_PAGE:
                    continue
                try:
                    await asyncio.wait_for(subscription.next(), self.global_recheck_seconds)
                except TimeoutError:
                    pass
                if subscription.closed:
                    raise ShuttingDown(f"WatchEvents with after_cursor={cursor!r}")
        finally:
            self.hub.unsubscribe(subscription)
