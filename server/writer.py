"""Where write transactions run: synchronous functions over a Session, one code path for both stores.

A write is a plain function `fn(session, events) -> result` that locks a
row, changes it and appends events. How it runs depends on the store:

- SQLite has one writer at a time anyway. A dedicated thread owns the
  write connection and runs every queued write of a moment in one
  transaction (group commit), each inside a SAVEPOINT so one failing write
  does not undo the others. The event loop hands over a batch and gets the
  results back in one hop each way, instead of a thread hop per statement.
- Postgres takes concurrent writers: each write runs in its own
  transaction on the async engine (`AsyncSession.run_sync`), rows locked
  with SELECT ... FOR UPDATE.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

Result = TypeVar("Result")
WriteFn = Callable[[Session, list[Any]], Result]
MAX_BATCH = 256


class SqliteWriter:
    def __init__(self, async_url: str, publish: Callable[[list[Any]], None]) -> None:
        url = make_url(async_url).set(drivername="sqlite")
        self.engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(self.engine, "connect", _autocommit_driver)
        event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.publish = publish
        self._queue: queue.SimpleQueue[tuple[WriteFn[Any], asyncio.Future[Any], asyncio.AbstractEventLoop] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pausable-sqlite-writer", daemon=True)
        self._thread.start()

    async def submit(self, fn: WriteFn[Result]) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.put((fn, future, loop))
        return await future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        self.engine.dispose()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            outcomes = self._apply(batch)
            loop = batch[0][2]
            loop.call_soon_threadsafe(self._deliver, outcomes)

    def _apply(self, batch: list[tuple[WriteFn[Any], asyncio.Future[Any], asyncio.AbstractEventLoop]]) -> list[tuple[asyncio.Future[Any], Any, list[Any], BaseException | None]]:
        outcomes: list[tuple[asyncio.Future[Any], Any, list[Any], BaseException | None]] = []
        try:
            with self.sessions.begin() as session:
                for fn, future, _loop in batch:
                    events: list[Any] = []
                    try:
                        with session.begin_nested():
                            result = fn(session, events)
                        outcomes.append((future, result, events, None))
                    except Exception as error:  # noqa: BLE001 - handed to the caller
                        outcomes.append((future, None, [], error))
        except Exception as error:  # noqa: BLE001 - the commit failed: every write in the batch failed
            return [(future, None, [], error) for _fn, future, _loop in batch]
        return outcomes

    def _deliver(self, outcomes: list[tuple[asyncio.Future[Any], Any, list[Any], BaseException | None]]) -> None:
        published: list[Any] = [event for _future, _result, events, _error in outcomes for event in events]
        if published:
            self.publish(published)
        for future, result, _events, error in outcomes:
            if future.cancelled():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
    """Let SQLAlchemy, not the sqlite3 module, emit BEGIN/SAVEPOINT (SQLAlchemy's documented pysqlite recipe)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
