"""The SDK's typed view and its one JSON rendering (shared with the CLI), without a daemon."""

from __future__ import annotations

import json

from pausable.clients import EventType, State, event_dict, operation_dict
from pausable.v1 import operation_pb2 as pb


def test_enums_are_the_proto_numbers_with_plain_names() -> None:
    assert {s.name for s in State} == {n.removeprefix("OPERATION_STATE_") for n, _ in pb.OperationState.items()}
    assert {e.name for e in EventType} == {n.removeprefix("EVENT_TYPE_") for n, _ in pb.EventType.items()}
    assert all(pb.OperationState.Name(s) == f"OPERATION_STATE_{s.name}" for s in State)
    assert State.PAUSED == pb.OPERATION_STATE_PAUSED and State.PAUSED == "PAUSED" and f"{State.PAUSED}" == "PAUSED"
    assert State.PAUSED in {pb.OPERATION_STATE_PAUSED}, "hashes as its number"


def test_operation_json_keeps_exact_ints_and_plain_names() -> None:
    op = pb.Operation(
        id="a" * 32,
        workflow="w",
        state=pb.OPERATION_STATE_FAILED,
        current_step=1,
        total_steps=3,
        step_number=2,
        input_json='{"rows": [1, 2], "step_seconds": 3}',
        result_json=str(2**53 + 1),
        last_seq=7,
        error=pb.OperationError(code="E", message="boom", step=1, step_name="t2", step_number=2),
    )
    op.result.number_value = float(2**53 + 1)
    data = operation_dict(op)
    assert data["state"] == "FAILED" and data["last_seq"] == 7 and data["step"] == 2 and data["total_steps"] == 3
    assert data["input"] == {"rows": [1, 2], "step_seconds": 3} and data["result"] == 2**53 + 1
    assert data["error"] == {"code": "E", "message": "boom", "step": 2, "step_name": "t2", "traceback": ""}
    assert '"rows": [1, 2], "step_seconds": 3' in json.dumps(data), "no 1.0, 3.0"
    event = pb.OperationEvent(operation_id=op.id, seq=7, type=pb.EVENT_TYPE_FAILED, operation=op)
    assert event_dict(event)["type"] == "FAILED" and event_dict(event)["seq"] == 7


def test_an_older_daemon_without_step_number_or_json_text_is_read_the_same_way() -> None:
    op = pb.Operation(current_step=2, total_steps=5)
    op.result.number_value = 3.0
    data = operation_dict(op)
    assert data["step"] == 3 and data["result"] == 3 and isinstance(data["result"], int)
