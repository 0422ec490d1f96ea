"""The HTTP/JSON gateway against a real daemon and worker, on both stores: the same operations, validation, status
codes and messages as gRPC; Watch and WatchEvents as Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from support.http import ServerSentEvent, call, events
from support.stack import Stack, history

from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb

QUICK = {"step_seconds": 0.05, "rows": 10}


def start(stack: Stack, suite: str, **params: Any) -> dict[str, Any]:
    reply = call(stack.http_url, "POST", "/v1/operations", {"workflow": "demo.etl", "input": params, "labels": {"suite": suite}})
    assert reply.status == 200, reply.body
    operation: dict[str, Any] = reply.body["operation"]
    return operation


def grpc_failure(call_: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call_(request, timeout=10)
    return caught.value  # type: ignore[return-value]


def test_an_operation_started_over_http_is_the_one_grpc_sees_and_its_result_keeps_its_types(stack: Stack, client: Client) -> None:
    suite = uuid.uuid4().hex
    started = start(stack, suite, **QUICK)
    assert started["state"] in ("OPERATION_STATE_PENDING", "OPERATION_STATE_RUNNING")
    assert started["labels"] == {"suite": suite} and started["totalSteps"] == 5
    assert isinstance(started["lastSeq"], str), "int64 fields are strings in the proto3 JSON mapping"
    assert "inputJson" not in started and started["input"] == QUICK
    history(client, started["id"])

    got = call(stack.http_url, "GET", f"/v1/operations/{started['id']}").body["operation"]
    seen = client.stub.GetOperation(pb.GetOperationRequest(operation_id=started["id"]), timeout=10).operation
    assert (got["id"], got["state"], got["stepNumber"], int(got["lastSeq"])) == (
        seen.id,
        pb.OperationState.Name(seen.state),
        seen.step_number,
        seen.last_seq,
    )
    summary = got["result"]["summary"]
    assert summary == {"count": 5, "total": 220, "max": 100, "mean": 44.0}
    assert isinstance(summary["count"], int) and isinstance(summary["mean"], float), "types as the store has them"


def test_list_filters_and_pages_like_list_operations(stack: Stack, client: Client) -> None:
    suite = uuid.uuid4().hex
    ids = [start(stack, suite, **QUICK)["id"] for _ in range(3)]
    for operation_id in ids:
        history(client, operation_id)
    query = f"/v1/operations?labels[suite]={suite}&pageSize=2&states=OPERATION_STATE_SUCCEEDED"
    first = call(stack.http_url, "GET", query).body
    assert [op["id"] for op in first["operations"]] == ids[:0:-1] and first["nextPageToken"]
    assert "result" not in first["operations"][0], "the BASIC view leaves values out"
    second = call(stack.http_url, "GET", f"{query}&pageToken={first['nextPageToken']}&view=OPERATION_VIEW_FULL").body
    assert [op["id"] for op in second["operations"]] == ids[:1] and second["nextPageToken"] == ""
    assert second["operations"][0]["result"]["summary"]["count"] == 5
    none = call(stack.http_url, "GET", f"/v1/operations?labels[suite]={suite}&states=OPERATION_STATE_PAUSED").body
    assert none["operations"] == [] and none["nextPageToken"] == ""


def test_pause_and_resume_over_http(stack: Stack, client: Client) -> None:
    started = start(stack, uuid.uuid4().hex, step_seconds=0.4, rows=10)
    paused = call(stack.http_url, "POST", f"/v1/operations/{started['id']}:pause", {"requestId": "p-1"})
    assert paused.status == 200 and paused.body["operation"]["state"] in (
        "OPERATION_STATE_PAUSE_REQUESTED",
        "OPERATION_STATE_PAUSED",
    )
    for event in client.stub.Watch(pb.WatchRequest(operation_id=started["id"]), timeout=60):
        if event.event.type == pb.EVENT_TYPE_PAUSED:
            break
    resumed = call(stack.http_url, "POST", f"/v1/operations/{started['id']}:resume", {})
    assert resumed.status == 200, resumed.body
    assert history(client, started["id"])[-1].type == pb.EVENT_TYPE_SUCCEEDED


def test_a_reason_sent_over_http_is_on_the_event_the_sse_stream_shows(stack: Stack, client: Client) -> None:
    started = start(stack, uuid.uuid4().hex, step_seconds=0.4, rows=10)
    path = f"/v1/operations/{started['id']}"
    too_long = call(stack.http_url, "POST", f"{path}:cancel", {"reason": "x" * 1001})
    assert too_long.status == 400 and too_long.error["status"] == "INVALID_ARGUMENT"
    assert "keep it to 1000" in too_long.error["message"]
    cancelled = call(stack.http_url, "POST", f"{path}:cancel", {"requestId": "c-1", "reason": "cancelled over HTTP"})
    assert cancelled.status == 200, cancelled.body
    seen = [e.data for e in events(stack.http_url, f"{path}/events") if e.event != "end"]
    [cancel] = [e for e in seen if e.get("reason")]  # CANCELLED at once when it was still PENDING
    assert cancel["type"] in ("EVENT_TYPE_CANCEL_REQUESTED", "EVENT_TYPE_CANCELLED")
    assert (cancel["actor"], cancel["reason"]) == ("anonymous", "cancelled over HTTP")


def test_a_breakpoint_and_a_forced_cancel_over_http(stack: Stack, client: Client) -> None:
    started = start(stack, uuid.uuid4().hex, step_seconds=2, rows=10)
    path = f"/v1/operations/{started['id']}"
    wrong = call(stack.http_url, "POST", f"{path}:pause", {"beforeStep": 9})
    assert wrong.status == 400 and wrong.error["status"] == "INVALID_ARGUMENT" and "send 1 to 5" in wrong.error["message"]
    set_ = call(stack.http_url, "POST", f"{path}:pause", {"before_step": 5})
    assert set_.status == 200, set_.body
    assert (set_.body["operation"]["state"], set_.body["operation"]["pauseBeforeStep"]) == ("OPERATION_STATE_RUNNING", 5)
    forced = call(stack.http_url, "POST", f"{path}:cancel", {"force": True})
    assert forced.status == 200 and forced.body["operation"]["state"] == "OPERATION_STATE_CANCELLED", forced.body
    assert history(client, started["id"])[-1].type == pb.EVENT_TYPE_CANCELLED


def test_errors_have_grpcs_codes_and_messages(stack: Stack, client: Client) -> None:
    missing = call(stack.http_url, "GET", "/v1/operations/0123456789abcdef0123456789abcdef")
    error = grpc_failure(client.stub.GetOperation, pb.GetOperationRequest(operation_id="0123456789abcdef0123456789abcdef"))
    assert missing.status == 404 and missing.error == {"code": 404, "status": "NOT_FOUND", "message": error.details()}

    done = start(stack, uuid.uuid4().hex, **QUICK)
    history(client, done["id"])
    refused = call(stack.http_url, "POST", f"/v1/operations/{done['id']}:resume", {})
    error = grpc_failure(client.stub.Resume, pb.ResumeRequest(operation_id=done["id"]))
    assert refused.status == 400 and refused.error["status"] == "FAILED_PRECONDITION"
    assert refused.error["message"] == error.details()

    huge = call(stack.http_url, "POST", "/v1/operations", raw=b'{"workflow": "' + b"x" * (17 << 20) + b'"}')
    assert huge.status == 429 and "max_receive_message_bytes" in huge.error["message"], "gRPC's message size limit"

    page = call(stack.http_url, "GET", "/v1/operations?pageSize=5000")
    error = grpc_failure(client.stub.ListOperations, pb.ListOperationsRequest(page_size=5000))
    assert page.status == 400 and page.error["message"] == error.details()


@pytest.mark.parametrize(
    "method, path, body, says",
    [
        ("POST", "/v1/operations", b"{not json", "not valid JSON"),
        ("POST", "/v1/operations", b"[1, 2]", "send a JSON object"),
        ("POST", "/v1/operations", b'{"workflow": "demo.etl", "inputs": {}}', "inputs"),
        ("POST", "/v1/operations", b'{"workflow": 5}', "workflow"),
        ("POST", "/v1/operations", b"{}", "workflow is required"),
        ("POST", "/v1/operations", b'{"workflow": "demo.etl", "input": ' + b"[" * 100 + b"]" * 100 + b"}", "deeper"),
        ("POST", "/v1/operations", b'{"workflow": "demo.etl", "input": {"rows": "many"}}', "schema"),
        ("GET", "/v1/operations?bogus=1", None, "unknown query parameter 'bogus'"),
        ("GET", "/v1/operations?states=RUNNING", None, "RUNNING"),
        ("GET", "/v1/operations?stuck=maybe", None, "true or false"),
        ("GET", "/v1/operations?labels=x", None, "labels[key]=value"),
        ("GET", "/v1/operations?pageToken=%%%", None, "page_token"),
        ("GET", "/v1/operations?createdAfter=yesterday", None, "RFC 3339"),
        ("POST", "/v1/operations/not-an-id:pause", b"{}", "operation_id"),
    ],
)
def test_bad_input_is_a_400_that_says_what_to_send(stack: Stack, method: str, path: str, body: bytes | None, says: str) -> None:
    reply = call(stack.http_url, method, path, raw=body)
    assert reply.status == 400, reply.body
    assert reply.error["status"] == "INVALID_ARGUMENT" and says in reply.error["message"], reply.error


def test_watch_replays_then_follows_live_then_ends(stack: Stack) -> None:
    started = start(stack, uuid.uuid4().hex, step_seconds=0.1, rows=10)
    seen = list(events(stack.http_url, f"/v1/operations/{started['id']}/events"))
    assert seen[-1].event == "end"
    body = seen[:-1]
    assert [int(event.id) for event in body] == list(range(1, len(body) + 1)), "every event once, in order"
    assert [int(event.data["seq"]) for event in body] == [int(event.id) for event in body]
    assert body[-1].data["type"] == "EVENT_TYPE_SUCCEEDED" and body[-1].data["operation"]["state"] == "OPERATION_STATE_SUCCEEDED"

    resumed = list(events(stack.http_url, f"/v1/operations/{started['id']}/events", {"Last-Event-ID": str(len(body) - 2)}))
    assert [event.id for event in resumed] == [body[-2].id, body[-1].id, ""] and resumed[-1].event == "end"
    at_the_end = list(events(stack.http_url, f"/v1/operations/{started['id']}/events?afterSeq={len(body)}"))
    assert [event.event for event in at_the_end] == ["end"]


def test_watch_refuses_what_grpc_refuses_before_the_stream_opens(stack: Stack, client: Client) -> None:
    done = start(stack, uuid.uuid4().hex, **QUICK)
    last = len(history(client, done["id"]))
    for path, headers, status, says in [
        ("/v1/operations/0123456789abcdef0123456789abcdef/events", {}, 404, "no operation"),
        (f"/v1/operations/{done['id']}/events?afterSeq={last + 1}", {}, 400, f"its last seq is {last}"),
        (f"/v1/operations/{done['id']}/events?afterSeq=-1", {}, 400, "0 or more"),
        (f"/v1/operations/{done['id']}/events", {"Last-Event-ID": "abc"}, 400, "Last-Event-ID"),
        ("/v1/events?afterCursor=nonsense", {}, 400, "cursor"),
    ]:
        with pytest.raises(AssertionError, match=f"^{status}: .*{says}"):
            next(iter(events(stack.http_url, path, headers)))


def test_watch_events_filters_and_resumes_from_a_cursor(stack: Stack, client: Client) -> None:
    suite = uuid.uuid4().hex
    first = start(stack, suite, **QUICK)
    history(client, first["id"])
    start(stack, uuid.uuid4().hex, **QUICK)  # another suite's: filtered out
    stream = events(stack.http_url, f"/v1/events?labels[suite]={suite}")
    head: list[ServerSentEvent] = [next(stream) for _ in range(4)]
    stream.close()  # type: ignore[attr-defined]
    assert {event.data["operationId"] for event in head} == {first["id"]}
    assert [int(event.data["seq"]) for event in head] == [1, 2, 3, 4]
    stream = events(stack.http_url, f"/v1/events?labels[suite]={suite}", {"Last-Event-ID": head[1].id})
    assert [int(next(stream).data["seq"]) for _ in range(2)] == [3, 4]
    stream.close()  # type: ignore[attr-defined]


def test_a_stream_cut_by_a_daemon_restart_goes_on_from_last_event_id_without_a_gap(private_stack: Stack) -> None:
    stack = private_stack
    started = start(stack, uuid.uuid4().hex, step_seconds=0.6, rows=10)
    path = f"/v1/operations/{started['id']}/events"
    stream = events(stack.http_url, path)
    seen = [next(stream) for _ in range(3)]
    stack.daemon.stop()  # SIGTERM: the open stream is told UNAVAILABLE, then closed
    rest = list(stream)
    assert [event.event for event in rest if event.event != "message"] == ["error"]
    assert rest[-1].data["error"]["status"] == "UNAVAILABLE"
    seen += [event for event in rest if event.event == "message"]
    stack.daemon.start()
    resumed = list(events(stack.http_url, path, {"Last-Event-ID": seen[-1].id}))
    assert resumed[-1].event == "end"
    seqs = [int(event.id) for event in seen + resumed[:-1]]
    assert seqs == list(range(1, len(seqs) + 1)), "no event lost or repeated across the restart"
    assert resumed[-2].data["type"] == "EVENT_TYPE_SUCCEEDED"


def test_a_list_gives_the_cursor_to_follow_changes_after_it_without_the_history(stack: Stack, client: Client) -> None:
    suite = uuid.uuid4().hex
    before = start(stack, suite, **QUICK)
    history(client, before["id"])
    page = call(stack.http_url, "GET", f"/v1/operations?labels[suite]={suite}").body
    assert [op["id"] for op in page["operations"]] == [before["id"]] and page["eventsCursor"]
    after = start(stack, suite, **QUICK)
    stream = events(stack.http_url, f"/v1/events?labels[suite]={suite}&afterCursor={page['eventsCursor']}")
    first = next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert (first.data["operationId"], first.data["type"]) == (after["id"], "EVENT_TYPE_CREATED"), "nothing from before the list"


def test_retry_fork_and_the_step_history_over_http(stack: Stack, client: Client) -> None:
    slow = start(stack, uuid.uuid4().hex, step_seconds=0.3, rows=10)
    path = f"/v1/operations/{slow['id']}"
    assert call(stack.http_url, "POST", f"{path}:cancel", {}).status == 200
    assert history(client, slow["id"])[-1].type == pb.EVENT_TYPE_CANCELLED
    retried = call(stack.http_url, "POST", f"{path}:retry", {"requestId": "r-1", "reason": "retried over HTTP"})
    assert retried.status == 200 and retried.body["operation"]["state"] == "OPERATION_STATE_RUNNING", retried.body
    events_seen = history(client, slow["id"])
    assert events_seen[-1].type == pb.EVENT_TYPE_SUCCEEDED
    assert [e.reason for e in events_seen if e.type == pb.EVENT_TYPE_RETRIED] == ["retried over HTTP"]
    again = call(stack.http_url, "POST", f"{path}:retry", {})
    assert again.status == 400 and again.error["status"] == "FAILED_PRECONDITION", "a SUCCEEDED operation is not retried"

    got = call(stack.http_url, "GET", f"{path}?stepView=STEP_VIEW_FULL").body
    assert [(s["kind"], s["stepNumber"]) for s in got["steps"]][-5:] == [("KIND_RESULT", n) for n in range(1, 6)]
    assert got["steps"][-1]["result"]["summary"]["count"] == 5 and int(got["steps"][-1]["resultBytes"]) > 0
    assert isinstance(got["steps"][-1]["result"]["summary"]["count"], int) and "resultJson" not in got["steps"][-1]
    forked = call(stack.http_url, "POST", f"{path}:fork", {"fromStep": 3, "reason": "forked over HTTP"})
    assert forked.status == 200, forked.body
    child = forked.body["operation"]
    assert (child["parentId"], child["forkedFromStep"]) == (slow["id"], 3)
    history(client, child["id"])
    assert client.get(child["id"]).result == client.get(slow["id"]).result
    assert call(stack.http_url, "GET", f"{path}?stepView=STEP_VIEW_BASIC").body["forks"] == [child["id"]]
    bad = call(stack.http_url, "POST", f"{path}:fork", {"fromStep": 9})
    assert bad.status == 400 and bad.error["status"] == "INVALID_ARGUMENT" and "from 1 to 5" in bad.error["message"]
