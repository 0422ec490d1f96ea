"""The Postgres write path: one transaction per write on the async engine, with a NOTIFY for the other replicas.

Postgres takes concurrent writers: each write runs in its own transaction
(`AsyncSession.run_sync`), rows locked with SELECT ... FOR UPDATE. A write
that appends events also sends `pg_notify('pausable_events', '<replica>
<operation> <seq>')`, delivered only if it commits; notify.py listens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session

Result = TypeVar("Result")
NOTIFY_CHANNEL = "pausable_events"
NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class PostgresWriter:
    def __init__(self, sessions: async_sessionmaker[Any], replica: str, publish: Callable[[list[Any]], None]) -> None:
        self.sessions = sessions
        self.replica = replica
        self.publish = publish

    async def submit(self, fn: Callable[[Session, list[Any]], Result]) -> Result:
        """Run `fn` in a write transaction; publish its events once committed."""
        events: list[Any] = []

        def run(session: Session) -> Result:
            result = fn(session, events)
            if events:
                payload = f"{self.replica} {events[-1].operation_id} {events[-1].seq}"
                session.execute(NOTIFY, {"channel": NOTIFY_CHANNEL, "payload": payload})
            return result

        async with self.sessions.begin() as session:
            result = await session.run_sync(run)
        if events:
            self.publish(events)
        return result
