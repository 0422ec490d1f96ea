"""Bulk actions (BulkPause, BulkResume, BulkCancel): the rules, as pure functions; the store runs them in batches.

A bulk action covers the ids given or the operations a selector (the
ListOperations filter) matched when it was created, operations created later
excluded. Any replica's engine takes it in batches of BATCH operations in id
order, one transaction each: the bulk action's row is locked (SKIP LOCKED on
Postgres: one replica at a time), each operation of the batch is locked and
the command applied as a single Pause/Resume/Cancel would be, and the
action's cursor (the last id processed) and counts move in the same
transaction. So an operation is processed once whatever the replicas do, and
a daemon restart loses nothing: the cursor is in the store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pausable.server.domain import OperationFilter
from pausable.server.states import Command, InvalidTransition, State, Transition, command

BATCH = 100  # operations per transaction
MAX_IDS = 10_000
MAX_FAILURES = 20  # failures kept with their message
RUNNING, DONE = "RUNNING", "DONE"
NO_LONGER_MATCHED = "no longer matched the selector"
NOT_FOUND = "not found"


def selector_json(where: OperationFilter) -> dict[str, Any]:
    """A selector as stored (bulk_actions.selector)."""
    return {
        "states": [str(state) for state in where.states],
        "workflow": where.workflow,
        "labels": dict(where.labels),
        "requester": where.requester,
        "created_after": where.created_after.isoformat() if where.created_after else None,
        "created_before": where.created_before.isoformat() if where.created_before else None,
    }


def selector_filter(data: dict[str, Any], created: datetime) -> OperationFilter:
    """The stored selector as a filter, bounded to the operations created before the bulk action."""
    before = datetime.fromisoformat(data["created_before"]) if data.get("created_before") else created
    return OperationFilter(
        states=[State(state) for state in data.get("states", ())],
        workflow=data.get("workflow", ""),
        labels=dict(data.get("labels", {})),
        requester=data.get("requester", ""),
        created_after=datetime.fromisoformat(data["created_after"]) if data.get("created_after") else None,
        created_before=min(before.astimezone(UTC), created.astimezone(UTC)),
    )


def request_hash(kind: Command, operation_ids: Sequence[str] | None, selector: dict[str, Any] | None, reason: str) -> str:
    """What a repeated request_id must repeat."""
    text = json.dumps([str(kind), list(operation_ids) if operation_ids is not None else None, selector, reason], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def verdict(kind: Command, state: State) -> Transition | str:
    """What the command does to an operation that is `state`: the transition, or why it is skipped."""
    try:
        transition = command(kind, state)
    except InvalidTransition:
        return f"{state}: cannot {kind}"
    if transition.state is None:
        return f"already {state}"
    return transition


def reconciled(matched: int, done: int, skipped: int, failed: int, reasons: dict[str, int]) -> tuple[int, int, dict[str, int]]:
    """(matched, skipped, reasons) once every operation was processed, so that matched = done + skipped + failed:
    operations counted when the action was created that no longer matched are skipped; more found than counted
    (operations that entered the selection meanwhile, e.g. PENDING ones) raise `matched`."""
    processed = done + skipped + failed
    if processed >= matched:
        return processed, skipped, reasons
    missing = matched - processed
    return matched, skipped + missing, {**reasons, NO_LONGER_MATCHED: reasons.get(NO_LONGER_MATCHED, 0) + missing}
