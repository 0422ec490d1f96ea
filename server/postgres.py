"""The Postgres write path: group commit on the async engine, with a NOTIFY for the other replicas.

Writes that arrive together run in one transaction (group commit), each
inside a SAVEPOINT: one write's failure (a lost compare-and-set, a
constraint, a domain error) rolls back only its own statements and reaches
only its own caller. Every caller is answered after the COMMIT, with its
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
from typing import Any, TypeVar

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

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
        self._queue: deque[tuple[WriteFn, asyncio.Future[Any]]] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._committing: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(COMMITTING)

    async def submit(self, fn: Callable[[Session, list[Any]], Result]) -> Result:
        """Run `fn` in the next batch's transaction; its result once committed (its events are then published)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, future))
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
                    await session.begin()
                    outcomes = await session.run_sync(self._apply, [fn for fn, _future in batch])
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

    async def _commit(
        self, session: AsyncSession, batch: list[tuple[WriteFn, asyncio.Future[Any]]], outcomes: list[Outcome]
    ) -> None:
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

    def _apply(self, session: Session, batch: Sequence[WriteFn]) -> list[Outcome]:
        """Each write in a SAVEPOINT; then one NOTIFY statement for the operations whose events were appended."""
        connection = session.connection()
        outcomes: list[Outcome] = []
        for fn in batch:
            events: list[Any] = []
            connection.exec_driver_sql("SAVEPOINT write")
            try:
                result = fn(session, events)
                session.flush()
            except Exception as error:  # noqa: BLE001 - handed to its caller
                connection.exec_driver_sql("ROLLBACK TO SAVEPOINT write")
                session.expunge_all()
                outcomes.append((None, [], error))
            else:
                outcomes.append((result, events, None))
            connection.exec_driver_sql("RELEASE SAVEPOINT write")
        last: dict[str, int] = {}
        for _result, events, _error in outcomes:
            for event in events:
                last[event.operation_id] = event.seq
        if last:
            payloads = [f"{self.replica} {operation} {seq}" for operation, seq in last.items()]
            connection.execute(NOTIFY, {"channel": NOTIFY_CHANNEL, "payloads": payloads})
        return outcomes


def _answer(batch: list[tuple[WriteFn, asyncio.Future[Any]]], outcomes: list[Outcome]) -> None:
    for (_fn, future), (result, _events, error) in zip(batch, outcomes, strict=True):
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
