"""Cross-replica wake-ups over Postgres LISTEN/NOTIFY.

Every write transaction on Postgres sends `pg_notify('pausable_events',
'<replica> <operation> <seq>')`, delivered only if it commits. Each daemon
listens on one dedicated connection and pokes the hub for events committed
by other replicas; the watchers then read those events from the store, which
stays the source of truth. Nothing polls the database.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from pausable.retry import RetryPolicy
from pausable.server.hub import EventHub
from pausable.server.postgres import NOTIFY_CHANNEL

log = logging.getLogger("pausable.server")
# The shared backoff (pausable.retry) without a deadline: a replica keeps
# trying to get its LISTEN connection back for as long as Postgres is away.
RECONNECT = RetryPolicy(frozenset(), patience=None, first=0.1, cap=5.0)


class PgListener:
    def __init__(self, database_url: str, replica: str, hub: EventHub) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.replica = replica
        self.hub = hub
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._keep_connected(), name="pausable-pg-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._connection is not None:
            await self._connection.close()

    async def _connect(self) -> None:
        self._lost.clear()
        self._connection = await asyncpg.connect(self.dsn)
        self._connection.add_termination_listener(lambda _conn: self._lost.set())
        await self._connection.add_listener(NOTIFY_CHANNEL, self._on_notify)

    async def _keep_connected(self) -> None:
        """Reconnect when the connection drops; then every watcher re-reads the store, since wake-ups may have been missed."""
        while True:
            await self._lost.wait()
            for delay in RECONNECT.backoff().delays():
                try:
                    await self._connect()
                    break
                except (OSError, asyncpg.PostgresError) as error:
                    log.warning("LISTEN connection lost, retrying in %.1fs: %s", delay, error)
                    await asyncio.sleep(delay)
            self.hub.poke_all()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        replica, _, rest = str(payload).partition(" ")  # a NOTIFY's payload is text
        if replica != self.replica:
            self.hub.poke(rest.partition(" ")[0])
