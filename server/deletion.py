"""Deleting finished operations, for `google.longrunning.Operations.DeleteOperation`.

Kept out of `store.py` on purpose: deletion is the one write that is not a
state transition. Only terminal operations may go, so nothing can still
report on them; the row is locked first so a concurrent command either sees
the row gone (NOT_FOUND) or runs before the delete. The rows of every table
that refers to `operations` (events, idempotency keys, labels, ...) are
deleted explicitly (`store.delete_operations`, which finds them from the
schema), so this needs no ON DELETE CASCADE support and keeps up with new tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pausable.server.models import OperationRow
from pausable.server.states import InvalidTransition, State
from pausable.server.store import NotFound, Store, delete_operations


async def delete_finished(store: Store, operation_id: str) -> None:
    """Delete a SUCCEEDED, FAILED or CANCELLED operation with its history.

    Raises NotFound for an unknown id, InvalidTransition (FAILED_PRECONDITION)
    for an operation that has not finished.
    """

    def delete(session: Session, _events: list[Any]) -> None:
        row = session.get(OperationRow, operation_id, with_for_update=True)
        if row is None:
            raise NotFound(operation_id)
        state = State(row.state)
        if not state.terminal:
            raise InvalidTransition(
                f"operation {operation_id} is {state}; only finished operations (SUCCEEDED, FAILED, CANCELLED) "
                "can be deleted: cancel it first and wait until it is CANCELLED"
            )
        delete_operations(session, [operation_id])

    await store.write(delete)
