"""Deleting finished operations, for `google.longrunning.Operations.DeleteOperation`.

Kept out of `store.py` on purpose: deletion is the one write that is not a
state transition. Only terminal operations may go, so nothing can still
report on them; the row is locked first so a concurrent command either sees
the row gone (NOT_FOUND) or runs before the delete. The rows of every table
that refers to `operations` (events, idempotency keys, labels, ...) are
deleted explicitly, found from the schema, so this needs no ON DELETE CASCADE
support and keeps up with new tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, delete

from pausable.server.models import Base, OperationRow
from pausable.server.states import InvalidTransition, State
from pausable.server.store import NotFound, Store


async def delete_finished(store: Store, operation_id: str) -> None:
    """Delete a SUCCEEDED, FAILED or CANCELLED operation with its history.

    Raises NotFound for an unknown id, InvalidTransition (FAILED_PRECONDITION)
    for an operation that has not finished.
    """
    async with store.sessions.begin() as session:
        row = await session.get(OperationRow, operation_id, with_for_update=True)
        if row is None:
            raise NotFound(operation_id)
        state = State(row.state)
        if not state.terminal:
            raise InvalidTransition(
                f"operation {operation_id} is {state}; only finished operations (SUCCEEDED, FAILED, CANCELLED) "
                "can be deleted: cancel it first and wait until it is CANCELLED"
            )
        for column in referring_columns():
            await session.execute(delete(column.table).where(column == operation_id))
        await session.execute(delete(OperationRow).where(OperationRow.id == operation_id))


def referring_columns() -> list[Column[Any]]:
    """Every column with a foreign key to operations.id (events, requests, labels, ...)."""
    operations = OperationRow.__table__
    return [fk.parent for table in Base.metadata.sorted_tables for fk in table.foreign_keys if fk.column.table is operations]
