"""The SDK's typed view and its one JSON rendering (shared with the CLI), without a daemon."""

from __future__ import annotations

import json

from pausable.clients import Event, EventType, OperationData, StageProgress, State, StepError, event_dict, operation_dict
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


def test_a_running_stage_is_read_as_stage_progress() -> None:
    op = pb.Operation(total_steps=3, step_number=2, stage=pb.StageProgress(members_total=200, members_done=37, members_running=8))
    stage = OperationData(op).stage
    assert stage == StageProgress(members_total=200, members_done=37, members_running=8)
    assert stage is not None and stage.fraction == 37 / 200
    assert operation_dict(op)["stage"] == {"members_total": 200, "members_done": 37, "members_running": 8}
    assert OperationData(pb.Operation(total_steps=3)).stage is None, "a plain step: no stage"
    assert "stage" not in operation_dict(pb.Operation(total_steps=3))
    assert StageProgress(0, 0, 0).fraction == 0.0, "a map over an empty list"


def test_the_error_names_the_failed_member_when_a_stage_member_failed() -> None:
    error = pb.OperationError(code="E", message="boom", step=1, step_name="t2", step_number=2, member_index=0)
    op = pb.Operation(state=pb.OPERATION_STATE_FAILED, total_steps=3, error=error)
    assert OperationData(op).error == StepError("E", "boom", 2, "t2", "", member_index=0), "index 0 is set, not absent"
    assert operation_dict(op)["error"]["member_index"] == 0
    op.error.ClearField("member_index")
    cleared = OperationData(op).error
    assert cleared is not None and cleared.member_index is None
    assert "member_index" not in operation_dict(op)["error"]


def test_the_stage_events_have_plain_names() -> None:
    assert EventType.MEMBER_COMPLETED == pb.EVENT_TYPE_MEMBER_COMPLETED and str(EventType.STAGE_STARTED) == "STAGE_STARTED"
    event = pb.OperationEvent(seq=4, type=pb.EVENT_TYPE_STAGE_COMPLETED, operation=pb.Operation())
    assert event_dict(event)["type"] == "STAGE_COMPLETED" and Event.from_proto(event).type is EventType.STAGE_COMPLETED
