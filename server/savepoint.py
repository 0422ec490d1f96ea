"""One write of a batch in a SAVEPOINT: its failure is undone and handed to its caller, and the batch goes on.

Both writers use it (writer.py on the sqlite3 connection, postgres.py on the
SQLAlchemy connection), each passing how it sends plain SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session


def isolated_write(
    session: Session, sql: Callable[[str], object], fn: Callable[[Session, list[Any]], Any]
) -> tuple[Any, list[Any], Exception | None]:
    """(result, events, None) of `fn(session, events)`, or (None, [], error) with its changes rolled back."""
    events: list[Any] = []
    sql("SAVEPOINT write")
    try:
        result = fn(session, events)
        session.flush()
    except Exception as error:  # noqa: BLE001 - handed to its caller
        sql("ROLLBACK TO SAVEPOINT write")
        session.expunge_all()
        outcome: tuple[Any, list[Any], Exception | None] = (None, [], error)
    else:
        outcome = (result, events, None)
    sql("RELEASE SAVEPOINT write")
    return outcome
