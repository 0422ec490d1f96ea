"""The Postgres write path: group commit on the async engine, with a NOTIFY for the other replicas.

Writes that arrive together run in one transaction (group commit). One
write's failure (a lost compare-and-set, a constraint, a domain error)
reaches only its own caller: the batch then runs again with each write in
a SAVEPOINT (PostgresWriter._apply). Every caller is answered after the COMMIT, with its
own result or error; a failed COMMIT fails the whole batch. Rows are locked
with SELECT ... FOR UPDATE as before.

One batch runs its statements at a time; while it waits for its COMMIT
(the WAL flush), the next batch already runs on another connection. No
deadlock among the daemon's own batches: a committing batch waits for
nothing but the disk. Measured on 2 cores with fsync on (bench
`postgres_checkpoint_ratio`): one transaction per write spent most of the
daemon's CPU in the round trips of BEGIN, the pool's ping, the NOTIFY and
COMMIT, and one WAL flush per write.

Each batch sends, in one statement, `pg_notify('pausable_events',
'<replica> <operation> <seq>')` per operation whose events it appends,
delivered only if it commits; notify.py listens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from pausable.server.savepoint import isolated_write

Result = TypeVar("Result")
WriteFn = Callable[[Session, list[Any]], Any]
Outcome = tuple[Any, list[Any], BaseException | None]  # result, events, error
NOTIFY_CHANNEL = "pausable_events"
NOTIFY = text("SELECT pg_notify(:channel, payload) FROM unnest(:payloads) AS payload").bindparams(
    bindparam("payloads", type_=ARRAY(Text()))
)
MAX_BATCH = 128
COMMITTING = 3  # batches waiting for their COMMIT while the next one runs


class PostgresWriter:
    def __init__(self, sessions: async_sessionmaker[Any], replica: str, publish: Callable[[list[Any]], None]) -> None:
        self.sessions = sessions
        self.replica = replica
        self.publish = publish
        self._queue: deque[Entry] = deque()
        self.deferred: Deferred | None = None  # while a deferrable write of an all-in-one-go batch runs
        self._drainer: asyncio.Task[None] | None = None
        self._committing: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(COMMITTING)

    async def submit(
        self, fn: Callable[[Session, list[Any]], Result], deferrable: bool = False, locks: Sequence[str] = ()
    ) -> Result:
        """Run `fn` in the next batch's transaction; its result once committed (its events are then published).

        `deferrable`: `fn` changes operations only through Store._locked and Store._append and reads no other
        column of theirs that a write changes, so its UPDATE and event INSERTs may wait for the end of the batch.
        `locks`: the operations it locks, if known: the batch locks and reads them all in one statement first.
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(Entry(fn, deferrable, future, tuple(locks)))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name="pausable-postgres-writer")
        return await future

    async def close(self) -> None:
        """Wait for the batches under way."""
        while self._drainer is not None or self._committing:
            await asyncio.gather(*([self._drainer] if self._drainer else []), *self._committing, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._slots.acquire()
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
                session = self.sessions()
                try:
                    outcomes = await session.run_sync(self._apply, batch)
                except BaseException as error:
                    self._slots.release()
                    await _close(session)
                    _answer(batch, [(None, [], error)] * len(batch))
                    if not isinstance(error, Exception):
                        raise
                    continue
                task = asyncio.create_task(self._commit(session, batch, outcomes))
                self._committing.add(task)
                task.add_done_callback(self._committing.discard)
        finally:
            self._drainer = None

    async def _commit(self, session: AsyncSession, batch: list[Entry], outcomes: list[Outcome]) -> None:
        try:
            await session.commit()
        except BaseException as error:  # the whole batch is lost; each write that had failed keeps its own error
            outcomes = [(None, [], own or error) for _result, _events, own in outcomes]
            if not isinstance(error, Exception):
                raise
        finally:
            self._slots.release()
            await _close(session)
        _answer(batch, outcomes)
        events = [event for _result, written, error in outcomes if error is None for event in written]
        if events:
            self.publish(events)

    def _apply(self, session: Session, batch: Sequence[Entry]) -> list[Outcome]:
        """The batch's writes, then one NOTIFY statement for the operations whose events they appended.

        First all in one go, without SAVEPOINTs (two round trips a write: most of
        a small write's cost). If any write fails, that attempt is rolled back
        and the batch runs again with each write in a SAVEPOINT, so only the
        failing write's caller gets its error (a write is a function of what the
        store holds: running it again after a rollback is running it once).
        """
        try:
            outcomes = self._run(session, batch, isolated=False)
        except Exception as error:  # noqa: BLE001 - the batch runs again, isolated
            session.rollback()
            if len(batch) == 1:
                return [(None, [], error)]
            outcomes = self._run(session, batch, isolated=True)
        last: dict[str, int] = {}
        for _result, events, _error in outcomes:
            for event in events:
                last[event.operation_id] = event.seq
        if last:
            payloads = [f"{self.replica} {operation} {seq}" for operation, seq in last.items()]
            session.connection().execute(NOTIFY, {"channel": NOTIFY_CHANNEL, "payloads": payloads})
        return outcomes

    def _run(self, session: Session, batch: Sequence[Entry], *, isolated: bool) -> list[Outcome]:
        """Each write's outcome; not `isolated`: the first failure is raised, and deferrable writes' UPDATEs and
        event INSERTs wait for the end of the batch (one executemany each: a round trip for the batch, not per write)."""
        outcomes: list[Outcome] = []
        deferred = Deferred()
        if not isolated:
            deferred.lock(session, sorted({key for entry in batch if entry.deferrable for key in entry.locks}))
        try:
            for fn, deferrable, _future, _locks in batch:
                if not isolated:
                    events: list[Any] = []
                    if deferrable:
                        self.deferred = deferred
                    else:
                        deferred.flush(session)
                    try:
                        outcomes.append((fn(session, events), events, None))
                    finally:
                        self.deferred = None
                    if not deferrable:
                        deferred.rows.clear()  # `fn` may have changed rows in SQL of its own
                    continue
                outcomes.append(isolated_write(session, session.connection().exec_driver_sql, fn))
            deferred.flush(session)
        finally:
            self.deferred = None
        session.flush()
        return outcomes


class Entry(NamedTuple):
    fn: WriteFn
    deferrable: bool
    future: asyncio.Future[Any]
    locks: tuple[str, ...]


class Deferred:
    """What a batch's deferrable writes left to send: their UPDATEs (per operation, merged) and event INSERTs, and
    the rows they locked as they left them (a later write of the batch on the same operation starts from there)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, dict[str, Any]] = {}
        self.inserts: list[tuple[Any, dict[str, Any]]] = []

    def lock(self, session: Session, operation_ids: list[str]) -> None:
        """Lock and read these operations' rows in one statement, in id order (as any other batch of this daemon)."""
        from pausable.server.store import SELECT_LOCKED_MANY  # store.py imports this module (through store_core.py)

        if operation_ids:
            for row in session.connection().execute(SELECT_LOCKED_MANY, {"locked_ids": operation_ids}):
                self.rows[row.id] = dict(row._mapping)

    def update(self, operation_id: str, changed: dict[str, Any]) -> None:
        self.updates.setdefault(operation_id, {}).update(changed)

    def flush(self, session: Session) -> None:
        """Send what waits: the UPDATEs (one executemany per set of changed columns), then the INSERTs (per statement)."""
        from pausable.server.store import UPDATE_OPERATION  # store.py imports this module (through store_core.py)

        connection = session.connection()
        shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
        for operation_id, changed in self.updates.items():
            shapes.setdefault(frozenset(changed), []).append({"updated_id": operation_id, **changed})
        for rows in shapes.values():
            connection.execute(UPDATE_OPERATION, rows)
        statements: dict[Any, list[dict[str, Any]]] = {}
        for statement, values in self.inserts:
            statements.setdefault(statement, []).append(values)
        for statement, rows in statements.items():
            connection.execute(statement, rows)
        self.updates.clear()
        self.inserts.clear()


def _answer(batch: list[Entry], outcomes: list[Outcome]) -> None:
    for (_fn, _deferrable, future, _locks), (result, _events, error) in zip(batch, outcomes, strict=True):
        if future.cancelled():
            continue
        if error is not None and not isinstance(error, Exception):
            future.cancel()  # the daemon is shutting down
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


async def _close(session: AsyncSession) -> None:
    with contextlib.suppress(Exception):  # a broken connection: the pool drops it
        await session.close()
