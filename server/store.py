"""Writing the store: every transition of operation state, each one transaction.

Each write locks the operation's row (SELECT ... FOR UPDATE on Postgres;
SQLite has a single writer, see writer.py), asks `pausable.server.states`
what the change means, and appends the resulting events with the next `seq`
values in the same transaction. After the commit the events go to
`on_commit` (the live fan-out); the store stays the source of truth. Chains
to dispatch are written to the outbox in the same transaction (engine.py
publishes them). Reads are in reads.py.

`Store` is composed of one part a job, each a class of its own module:
- store_core.py: `StoreCore`, what every part shares (the state and the write
  runner, `_locked`, `_apply`, `_append`, `_dispatch_of`, `_enqueue`, ...), the
  working row, `Change`, the prepared statements;
- store_commands.py: registering workflows, starting operations, commands;
- store_reports.py: workers' reports (checkpoints, progress, failures, details);
- store_durability.py: leases, the outbox, timers, retention;
- store_bulk.py: bulk actions;
- store_stages.py: stages and their members.
This module opens and closes the store; the names other modules import from
the store are all importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pausable.server import jsontext, migrate
from pausable.server.domain import Event
from pausable.server.store_bulk import BulkWrites, bulk_of
from pausable.server.store_commands import CommandWrites, Fork, NewInput
from pausable.server.store_core import (
    BULK,
    DELETE_OUTBOX,
    EVENTS,
    INSERT_EVENT,
    INSERT_LABEL,
    INSERT_OPERATION,
    INSERT_OUTBOX,
    INSERT_STEP_RESULT,
    LOCKED_COLUMNS,
    MEMBERS,
    NUMBERING_CACHE,
    OPERATIONS,
    OUTBOX,
    REQUESTS,
    SELECT_LOCKED,
    SELECT_LOCKED_MANY,
    SELECT_LOCKED_WITH_INPUT,
    UPDATE_OPERATION,
    Change,
    LeaseOutcome,
    OutboxId,
    StoreCore,
    WorkingRow,
    delete_operations,
    dispatch_from,
    new_step_secret,
    safe_publisher,
)
from pausable.server.store_durability import SECRET_BATCH, DurabilityWrites
from pausable.server.store_reports import ReportWrites
from pausable.server.store_stages import STOPPING, StageWrites, member_statements
from pausable.server.writer import sqlite_pragmas

__all__ = [
    "BULK",
    "DELETE_OUTBOX",
    "EVENTS",
    "INSERT_EVENT",
    "INSERT_LABEL",
    "INSERT_OPERATION",
    "INSERT_OUTBOX",
    "INSERT_STEP_RESULT",
    "LOCKED_COLUMNS",
    "MEMBERS",
    "NUMBERING_CACHE",
    "OPERATIONS",
    "OUTBOX",
    "REQUESTS",
    "SECRET_BATCH",
    "SELECT_LOCKED",
    "SELECT_LOCKED_MANY",
    "SELECT_LOCKED_WITH_INPUT",
    "STOPPING",
    "UPDATE_OPERATION",
    "BulkWrites",
    "Change",
    "CommandWrites",
    "DurabilityWrites",
    "Fork",
    "LeaseOutcome",
    "NewInput",
    "OutboxId",
    "ReportWrites",
    "StageWrites",
    "Store",
    "StoreCore",
    "WorkingRow",
    "bulk_of",
    "delete_operations",
    "dispatch_from",
    "make_engine",
    "member_statements",
    "new_step_secret",
    "safe_publisher",
]


def make_engine(url: str) -> AsyncEngine:
    """The async engine. On SQLite it only reads (and migrates): writes go through writer.SqliteWriter."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=4, max_overflow=0, pool_timeout=60, json_serializer=jsontext.dumps)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=20, max_overflow=20, pool_pre_ping=True, pool_timeout=10, json_serializer=jsontext.dumps
    )


class Store(StageWrites, BulkWrites, DurabilityWrites, ReportWrites, CommandWrites, StoreCore):
    """The store's writes (each part's), its reads (reads.Reads), opened with `open` and closed with `close`."""

    @classmethod
    async def open(cls, url: str, on_commit: Callable[[list[Event]], None] | None = None, replica: str = "") -> Store:
        engine = make_engine(url)
        await migrate.ensure_current(engine)
        return cls(engine, on_commit, replica)

    async def close(self) -> None:
        if self.sqlite is not None:
            if self._sent:  # a transaction deletes the entries sent last (or the sweep sends them again: harmless)
                with contextlib.suppress(Exception):
                    await self.write(lambda _session, _events: None)
            await asyncio.to_thread(self.sqlite.close)
        else:
            await self.postgres_writer.close()
        await self.engine.dispose()
