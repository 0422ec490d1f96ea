"""An operation started straight on a Store (no daemon): for tests of the store and of what reads it."""

from __future__ import annotations

from pausable.server.dispatch import plan_for
from pausable.server.domain import Workflow
from pausable.server.store import Store


async def started_operation(store: Store, requester: str = "") -> tuple[str, str]:
    """Start an operation of "w" (three steps, registered here): its id and its first dispatch's step token."""
    await store.register_workflows([Workflow("w", plan_for(["a", "b", "c"]))], "test")
    workflow = await store.get_workflow("w")
    assert workflow is not None
    change = await store.create_operation(workflow, input_json="0", request_id="", requester=requester, labels={})
    assert change.dispatch is not None
    return change.operation.id, change.dispatch.step_token
