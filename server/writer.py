"""Where write transactions run: synchronous functions over a Session, one code path for both stores.

A write is a plain function `fn(session, events) -> result` that locks a
row, changes it and appends events. How it runs depends on the store:

- SQLite has one writer at a time anyway. A dedicated thread owns the
  write connection and runs every queued write of a moment in one
  transaction (group commit), each inside a SAVEPOINT so one failing write
  does not undo the others. The one-row statements of hot writes run on
  its sqlite3 connection directly (prepared.py). The event loop hands over
  a batch and gets the results back in one hop each way, instead of a
  thread hop per statement.
- Postgres takes concurrent writers: each write runs in its own
  transaction on the async engine (`AsyncSession.run_sync`), rows locked
  with SELECT ... FOR UPDATE.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from pausable.server.batching import BatchingThread, Outcome
from pausable.server.prepared import PreparedStatements

Result = TypeVar("Result")
WriteFn = Callable[[Session, list[Any]], Result]


class SqliteWriter:
    def __init__(self, async_url: str, publish: Callable[[list[Any]], None], rolled_back: Callable[[], None]) -> None:
        """`publish` gets the events of each committed batch; `rolled_back` is told when a write or a commit failed."""
        url = make_url(async_url).set(drivername="sqlite")
        self.engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(self.engine, "connect", _autocommit_driver)
        event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.prepared = PreparedStatements(self.engine.dialect)
        self.publish = publish
        self.rolled_back = rolled_back
        self._connection: sqlite3.Connection | None = None
        self._thread: BatchingThread[WriteFn[Any]] = BatchingThread(
            "pausable-sqlite-writer", self._apply, delivered=self._published
        )

    async def submit(self, fn: WriteFn[Result]) -> Result:
        result: tuple[Result, list[Any]] = await self._thread.submit(fn)
        return result[0]

    def execute(self, statement: Any, params: dict[str, Any]) -> None:
        """Run a one-row write statement in the current write (see prepared.py); only from inside a write function."""
        assert self._connection is not None, "execute() runs only inside a write"
        self.prepared.execute(self._connection, statement, params)

    def close(self) -> None:
        self._thread.close()
        self.engine.dispose()

    def _apply(self, batch: Sequence[WriteFn[Any]]) -> list[Outcome]:
        """All writes in one transaction, each in a SAVEPOINT; a failed commit fails them all.

        The SAVEPOINTs are plain SQL on the sqlite3 connection (SQLAlchemy's
        nested transactions cost more than a small write). Each write's ORM
        changes are flushed inside its SAVEPOINT; a failed write's are dropped.
        """
        outcomes: list[Outcome] = []
        try:
            with self.sessions.begin() as session:
                self._connection = connection = session.connection().connection.driver_connection
                for fn in batch:
                    events: list[Any] = []
                    connection.execute("SAVEPOINT write")
                    try:
                        result = fn(session, events)
                        session.flush()
                    except Exception as error:  # noqa: BLE001 - handed to the caller
                        connection.execute("ROLLBACK TO write")
                        session.expunge_all()
                        self.rolled_back()
                        outcomes.append((None, error))
                    else:
                        outcomes.append(((result, events), None))
                    connection.execute("RELEASE write")
        except Exception:
            self.rolled_back()
            raise
        finally:
            self._connection = None
        return outcomes

    def _published(self, outcomes: list[Outcome]) -> None:
        events = [event for outcome, error in outcomes if error is None for event in outcome[1]]
        if events:
            self.publish(events)


def sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """WAL (readers never wait for the writer), no fsync per commit, wait for locks, enforce foreign keys."""
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _autocommit_driver(dbapi_connection: Any, record: Any) -> None:
    """Let SQLAlchemy, not the sqlite3 module, emit BEGIN/SAVEPOINT (SQLAlchemy's documented pysqlite recipe)."""
    dbapi_connection.isolation_level = None
    sqlite_pragmas(dbapi_connection, record)
