"""Reading events in pages bounded in bytes, their snapshots parsed off the event loop when large.

Every event row keeps a JSON snapshot of its operation, result included, so
after a step returns a large result (up to max_result_bytes) every later
event of that operation carries it: 500 such rows are hundreds of MiB. A
page is therefore one query (`page_query`) that picks the candidate rows
(filter, order, row limit), adds up the length of their snapshot text in
the database (on Postgres from the value's header, nothing decompressed)
and returns the snapshot only of the rows that fit in `replay_page_bytes`
(at least one, so a reader always moves on); the rows after them come
without it and only say that more follow. One round trip, as before.

The snapshot column is read as text (CAST in SQL): SQLAlchemy's JSON result
processor on SQLite, and the json codec SQLAlchemy installs in asyncpg on
Postgres, would parse it on the loop. The text is parsed here, in a thread
when the page's snapshots are larger than `offload_json_bytes` in all.
Measured on 2 shared cores: json.loads of a 1.1 MB object-rich snapshot
takes 16 ms, so a 500-row page of them held the loop for about 8 s; a page
of ordinary events (0.5 kB each) is parsed on the loop (the hop would cost
about what the parse does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, Text, bindparam, case, cast, func, or_, select

from pausable.server import limits, offload, parsed
from pausable.server.domain import Event, encode_cursor
from pausable.server.models import EventRow
from pausable.server.states import EventType

SNAPSHOT_TEXT = cast(EventRow.snapshot, Text)
# Every column an Event needs but the snapshot, which page_query adds as text (no JSON processor runs on the loop).
COLUMNS = (
    EventRow.id,
    EventRow.operation_id,
    EventRow.seq,
    EventRow.type,
    EventRow.message,
    EventRow.created_at,
    EventRow.actor,
    EventRow.reason,
    EventRow.tx,
)


def text_size(value: Any, postgres: bool) -> ColumnElement[int]:
    """A text column's length in the database: octet_length on Postgres reads the size from the value's header (no
    decompression); SQLite (3.40 here has no octet_length) counts the characters, the same for the ASCII text
    SQLAlchemy's JSON serializer writes. 0 for NULL."""
    return func.coalesce((func.octet_length if postgres else func.length)(value), 0)


def snapshot_size(postgres: bool) -> ColumnElement[int]:
    return text_size(SNAPSHOT_TEXT, postgres)


def page_query(candidates: Select[*tuple[Any, ...]], order: Sequence[str], postgres: bool) -> Select[*tuple[Any, ...]]:
    """The rows of `candidates` (a select of EventRow.id and the `order` columns, with its filter, order and limit):
    COLUMNS, and `snapshot_text` for those that fit in `replay_page_bytes` (NULL for the ones after them), in order.
    Run it with `budget()` among its parameters.

    The running total is taken over the keys and sizes only, then joined back to the events by id, so no snapshot
    is carried through the window (SQLite would copy it into a temporary table) or read for a row left out.
    """
    chosen = candidates.add_columns(snapshot_size(postgres).label("size")).subquery("chosen")
    ordered = [chosen.c[name] for name in order]
    sized = select(
        chosen.c.id,
        func.sum(chosen.c.size).over(order_by=ordered).label("running"),
        func.row_number().over(order_by=ordered).label("place"),
    ).subquery("sized")
    fits = or_(sized.c.running <= bindparam("replay_page_bytes", type_=BigInteger), sized.c.place == 1)
    return (
        select(*COLUMNS, case((fits, SNAPSHOT_TEXT)).label("snapshot_text"))
        .select_from(sized)
        .join(EventRow, EventRow.id == sized.c.id)
        .order_by(*[EventRow.__table__.c[name] for name in order])
    )


def budget() -> dict[str, int]:
    """page_query's parameter: the budget in force."""
    return {"replay_page_bytes": limits.current.replay_page_bytes}


def fitting(rows: Sequence[Any], limit: int) -> tuple[Sequence[Any], bool]:
    """The rows of a page_query that came with their snapshot, and whether more may follow them (some came without,
    or the query stopped at its `limit` rows)."""
    count = sum(1 for row in rows if row.snapshot_text is not None)
    return rows[:count], count < len(rows) or len(rows) == limit


def within_budget(sizes: Sequence[int], budget: int) -> int:
    """How many rows, in order, fit in `budget` bytes: at least one, so a page always makes progress."""
    count = 0
    for size in sizes:
        budget -= size
        if budget < 0 and count:
            break
        count += 1
    return count


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def event_of(row: Any) -> Event:
    """The event in a row of COLUMNS."""
    return Event(
        row.operation_id, row.seq, EventType(row.type), row.message, epoch(row.created_at) or 0.0,
        parsed.results.snapshot(row.operation_id, row.snapshot_text),
        encode_cursor(row.tx, row.id), row.actor or "", row.reason or "",
    )  # fmt: skip


def events_of(rows: Sequence[Any]) -> list[Event]:
    return [event_of(row) for row in rows]


async def parse(rows: Sequence[Any]) -> list[Event]:
    """`events_of`, in a thread when the rows' snapshots exceed `offload_json_bytes` in all."""
    if sum(len(row.snapshot_text) for row in rows) > limits.current.offload_json_bytes:
        return await offload.off_loop(lambda: events_of(rows))
    return events_of(rows)
