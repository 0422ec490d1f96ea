"""The gateway's JSON (server/httpjson.py): requests from path, query and body; replies with values as stored."""

from __future__ import annotations

import json

import grpc
import pytest

from pausable.server.httpjson import HTTP_STATUS, BadRequest, error_body, request_from, to_json
from pausable.v1 import operation_pb2 as pb


def test_the_query_fills_repeated_map_boolean_and_timestamp_fields() -> None:
    query = [
        ("states", "OPERATION_STATE_RUNNING"),
        ("states", "OPERATION_STATE_PAUSED"),
        ("labels[team]", "data"),
        ("labels[env]", "prod"),
        ("stuck", "true"),
        ("page_size", "20"),
        ("createdAfter", "2026-01-02T15:04:05Z"),
    ]
    request = request_from(pb.ListOperationsRequest, {}, query)
    assert list(request.states) == [pb.OPERATION_STATE_RUNNING, pb.OPERATION_STATE_PAUSED]
    assert dict(request.labels) == {"team": "data", "env": "prod"}
    assert request.stuck and request.page_size == 20 and request.created_after.seconds == 1767366245


def test_the_path_wins_over_the_body() -> None:
    request = request_from(pb.PauseRequest, {"operation_id": "from-path"}, body=b'{"operationId": "from-body", "requestId": "r"}')
    assert (request.operation_id, request.request_id) == ("from-path", "r")


@pytest.mark.parametrize(
    "query, body, says",
    [
        ([("nope", "1")], b"", "unknown query parameter 'nope'"),
        ([("labels", "x")], b"", "labels[key]=value"),
        ([("workflow[x]", "y")], b"", "only map fields take [key]"),
        ([("stuck", "yes")], b"", "true or false"),
        ([], b"{", "not valid JSON"),
        ([], b'"text"', "JSON str"),
        ([], b'{"pageSize": "many"}', "proto3 JSON mapping"),
        ([], b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
)
def test_what_cannot_become_the_request_says_what_to_send(query: list[tuple[str, str]], body: bytes, says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        request_from(pb.ListOperationsRequest, {}, query, body)
    assert says in str(refused.value)


def test_values_are_written_as_the_store_keeps_them() -> None:
    exact = "123456789012345678901234567890"
    operation = pb.Operation(id="op", input_json='{"n": 1}', result_json=f'{{"big": {exact}, "ratio": 0.5}}')
    operation.result.number_value = 1.0  # what a Value would carry: ignored in favour of the stored text
    text = to_json(pb.GetOperationResponse(operation=operation))
    assert f'"big":{exact}' in text.decode().replace(" ", "")
    shown = json.loads(text)["operation"]
    assert shown["input"] == {"n": 1} and shown["result"]["ratio"] == 0.5
    assert "inputJson" not in shown and "resultJson" not in shown
    assert shown["state"] == "OPERATION_STATE_UNSPECIFIED" and shown["lastSeq"] == "0", "every field, int64 as a string"


def test_every_status_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
    assert json.loads(error_body(grpc.StatusCode.NOT_FOUND, "gone")) == {
        "error": {"code": 404, "status": "NOT_FOUND", "message": "gone"}
    }


def test_the_command_fields_of_issue_13_come_from_the_body() -> None:
    """Pause's breakpoint and Cancel's force, as a gateway caller sends them (snake_case or camelCase)."""
    pause = request_from(pb.PauseRequest, {"operation_id": "a"}, body=b'{"before_step": 3}')
    assert (pause.operation_id, pause.before_step) == ("a", 3)
    cancel = request_from(pb.CancelRequest, {"operation_id": "a"}, body=b'{"force": true, "reason": "stuck"}')
    assert (cancel.force, cancel.reason) == (True, "stuck")
    assert request_from(pb.PauseRequest, {"operation_id": "a"}, body=b'{"beforeStep": 2}').before_step == 2


def test_a_running_stage_and_a_failed_member_in_the_proto3_json_mapping() -> None:
    """What the console reads: `stage` only while a stage runs, zeros included; `memberIndex` only when set, 0 too."""
    staged = pb.Operation(id="op", stage=pb.StageProgress(members_total=200, members_done=0, members_running=8))
    shown = json.loads(to_json(pb.GetOperationResponse(operation=staged)))["operation"]
    assert shown["stage"] == {"membersTotal": 200, "membersDone": 0, "membersRunning": 8}
    assert "stage" not in json.loads(to_json(pb.GetOperationResponse(operation=pb.Operation(id="op"))))["operation"]
    error = pb.OperationError(code="E", message="boom", step=1, step_number=2, member_index=0)
    failed = json.loads(to_json(pb.GetOperationResponse(operation=pb.Operation(id="op", error=error))))["operation"]
    assert failed["error"]["memberIndex"] == 0 and failed["error"]["stepNumber"] == 2
    error.ClearField("member_index")
    plain = json.loads(to_json(pb.GetOperationResponse(operation=pb.Operation(id="op", error=error))))["operation"]
    assert "memberIndex" not in plain["error"]
    event = pb.OperationEvent(seq=3, type=pb.EVENT_TYPE_MEMBER_COMPLETED, operation=staged)
    assert json.loads(to_json(pb.WatchResponse(event=event)))["event"]["type"] == "EVENT_TYPE_MEMBER_COMPLETED"
