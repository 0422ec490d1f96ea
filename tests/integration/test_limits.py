"""Every limit on what enters the daemon, just below and just above (server/limits.py, config.py).

One daemon without workers, with small limits so the cases stay small; a
workflow whose queue no worker reads keeps its operations RUNNING, and the
test reports on their steps as a worker would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from support.wire import nested, struct_value_bytes

from pausable.cli.launch import DaemonProcess, RedisServer
from pausable.jsonvalue import from_value, to_value
from pausable.server.encoded import field
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

DEPTH = 32  # the default max_json_depth
INPUT_BYTES = 5_000
RESULT_BYTES = 4_000
WORKFLOW_BYTES = 3_000
OFFLOAD_BYTES = 1_000  # stored values larger than this become messages in a thread (as results near RESULT_BYTES do)
REPLAY_BYTES = 12_000  # a replay page holds two or three snapshots carrying a result near RESULT_BYTES
PLAN = [{"task": "nobody.runs.this", "args": [], "kwargs": {}, "options": {"queue": "no-worker-reads-this"}}] * 3


class Daemon:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.ops = operation_pb2_grpc.OperationServiceStub(self.channel)
        self.workers = worker_pb2_grpc.WorkerServiceStub(self.channel)

    def register(self, name: str, schema: Any = None, plan: Any = PLAN) -> None:
        workflow = pb.Workflow(name=name, plan_json=json.dumps(plan))
        if schema is not None:
            workflow.input_schema.CopyFrom(to_value(schema))
        self.workers.RegisterWorkflows(worker_pb2.RegisterWorkflowsRequest(workflows=[workflow]), timeout=10)

    def start(self, data: Any = None, workflow: str = "test.limits") -> pb.Operation:
        request = pb.StartOperationRequest(workflow=workflow)
        if data is not None:
            request.input.CopyFrom(to_value(data))
        return self.ops.StartOperation(request, timeout=10).operation

    def get(self, operation_id: str) -> pb.Operation:
        return self.ops.GetOperation(pb.GetOperationRequest(operation_id=operation_id), timeout=10).operation


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("limits")
    process = DaemonProcess(
        f"sqlite+aiosqlite:///{folder / 'pausable.db'}",
        redis_server.url,
        folder / "daemon.log",
        max_input_bytes=str(INPUT_BYTES),
        max_result_bytes=str(RESULT_BYTES),
        max_workflow_bytes=str(WORKFLOW_BYTES),
        max_receive_message_bytes=str(1 << 20),
        list_page_bytes="20000",
        replay_page_bytes=str(REPLAY_BYTES),
        max_concurrent_rpcs="40",
        offload_json_bytes=str(OFFLOAD_BYTES),
        require_step_tokens="false",  # the test reports results itself, with no dispatched message to take a token from
    ).start()
    daemon = Daemon(process.target)
    daemon.register("test.limits")
    yield daemon
    daemon.channel.close()
    process.stop()


def rejected(call: Any, *args: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, timeout=10)
        if hasattr(result, "__iter__"):
            list(result)
    return caught.value


# -- inputs --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["object", "list"])
def test_input_depth_just_below_and_above(daemon: Daemon, kind: str) -> None:
    assert daemon.start(nested(DEPTH, kind)).state == pb.OPERATION_STATE_RUNNING
    request = pb.StartOperationRequest(workflow="test.limits", input=to_value(nested(DEPTH + 1, kind)))
    error = rejected(daemon.ops.StartOperation, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_json_depth" in error.details()


def test_an_input_protobuf_cannot_decode_is_invalid_argument(daemon: Daemon) -> None:
    """60 levels: deeper than protobuf decodes (its limit is 100 message levels); the servicer never sees it."""
    # Built by hand: the Python runtime refuses to build it, the wire format does not.
    raw = pb.StartOperationRequest(workflow="test.limits").SerializeToString() + field(2, struct_value_bytes(60))
    call = daemon.channel.unary_unary("/pausable.v1.OperationService/StartOperation")
    error = rejected(call, raw)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "max_json_depth" in error.details()


def test_input_size_just_below_and_above(daemon: Daemon) -> None:
    padding = INPUT_BYTES - len('{"s":""}')
    assert daemon.start({"s": "x" * padding}).state == pb.OPERATION_STATE_RUNNING
    error = rejected(
        daemon.ops.StartOperation, pb.StartOperationRequest(workflow="test.limits", input=to_value({"s": "x" * (padding + 1)}))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_input_bytes" in error.details()


def test_a_message_over_the_receive_limit_is_resource_exhausted(daemon: Daemon) -> None:
    request = pb.StartOperationRequest(workflow="test.limits", input=to_value("x" * (1 << 20)))
    error = rejected(daemon.ops.StartOperation, request)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- step results --------------------------------------------------------------


def checkpoint(daemon: Daemon, operation_id: str, step: int, result: str) -> worker_pb2.CheckpointResponse:
    request = worker_pb2.CheckpointRequest(operation_id=operation_id, step=step, result_json=result, continued=True)
    return daemon.workers.Checkpoint(request, timeout=10)


def first(stream: Any, count: int) -> list[Any]:
    taken = []
    for response in stream:
        taken.append(response)
        if len(taken) == count:
            stream.cancel()
            break
    return taken


def reads_still_work(daemon: Daemon, operation_id: str) -> None:
    daemon.get(operation_id)
    daemon.ops.ListOperations(pb.ListOperationsRequest(page_size=1000, view=pb.OPERATION_VIEW_FULL), timeout=10)
    assert len(first(daemon.ops.WatchEvents(pb.WatchEventsRequest(), timeout=10), 3)) == 3
    assert first(daemon.ops.Watch(pb.WatchRequest(operation_id=operation_id), timeout=10), 1)[0].event.seq == 1


def test_a_result_at_the_depth_limit_is_recorded(daemon: Daemon) -> None:
    op = daemon.start()
    answer = checkpoint(daemon, op.id, 0, json.dumps(nested(DEPTH)))
    assert answer.decision == worker_pb2.DECISION_CONTINUE
    stored = daemon.get(op.id)
    assert stored.current_step == 1
    assert stored.HasField("result")
    reads_still_work(daemon, op.id)


@pytest.mark.parametrize(
    ("result", "code"),
    [
        (json.dumps(nested(DEPTH + 1)), "RESULT_TOO_DEEP"),
        (json.dumps(nested(50)), "RESULT_TOO_DEEP"),
        ("[" * 5000 + "]" * 5000, "RESULT_TOO_LARGE"),
        ("[" * 1900 + "]" * 1900, "RESULT_TOO_DEEP"),
        (json.dumps("x" * RESULT_BYTES), "RESULT_TOO_LARGE"),
    ],
)
def test_a_result_over_a_limit_fails_its_operation_only(daemon: Daemon, result: str, code: str) -> None:
    other = daemon.start()
    op = daemon.start()
    answer = checkpoint(daemon, op.id, 0, result)
    assert answer.decision == worker_pb2.DECISION_STOP
    failed = daemon.get(op.id)
    assert failed.state == pb.OPERATION_STATE_FAILED
    assert failed.error.code == code
    assert ("max_json_depth" if code == "RESULT_TOO_DEEP" else "max_result_bytes") in failed.error.message
    assert not failed.HasField("result")
    assert checkpoint(daemon, other.id, 0, json.dumps({"ok": 1})).decision == worker_pb2.DECISION_CONTINUE
    reads_still_work(daemon, op.id)


def test_a_result_just_under_the_size_limit_is_recorded(daemon: Daemon) -> None:
    op = daemon.start()
    text = json.dumps("x" * (RESULT_BYTES - 2))
    assert len(text) == RESULT_BYTES
    assert checkpoint(daemon, op.id, 0, text).decision == worker_pb2.DECISION_CONTINUE


def test_a_value_converted_off_the_loop_reads_and_streams_whole(daemon: Daemon) -> None:
    """A result over offload_json_bytes reaches GetOperation, a live Watch, a replayed Watch and WatchEvents intact."""
    op = daemon.start({"s": "i" * 2 * OFFLOAD_BYTES})
    live = daemon.ops.Watch(pb.WatchRequest(operation_id=op.id), timeout=10)
    assert next(live).event.seq == 1  # subscribed: what comes next is live
    result = {"rows": [{"n": n, "name": f"row-{n}"} for n in range(3 * OFFLOAD_BYTES // 25)]}
    text = json.dumps(result)
    assert OFFLOAD_BYTES < len(text) <= RESULT_BYTES
    assert checkpoint(daemon, op.id, 0, text).decision == worker_pb2.DECISION_CONTINUE

    def recorded(stream: Any) -> pb.Operation:
        return next(r.event.operation for r in stream if r.event.type == pb.EVENT_TYPE_STEP_COMPLETED)

    got = daemon.get(op.id)
    assert from_value(got.result) == result and from_value(got.input) == {"s": "i" * 2 * OFFLOAD_BYTES}
    assert from_value(recorded(live).result) == result
    live.cancel()
    replay = daemon.ops.Watch(pb.WatchRequest(operation_id=op.id), timeout=10)
    assert from_value(recorded(replay).result) == result
    replay.cancel()
    events = daemon.ops.WatchEvents(pb.WatchEventsRequest(), timeout=10)
    found = next(r.event for r in events if r.event.operation_id == op.id and r.event.type == pb.EVENT_TYPE_STEP_COMPLETED)
    events.cancel()
    assert from_value(found.operation.result) == result


def test_a_replay_over_many_events_with_a_near_limit_result_delivers_each_once_in_order(daemon: Daemon) -> None:
    """replay_page_bytes is 12000 here: every event after the result carries it, so the replay takes many pages."""
    op = daemon.start()
    result = {"s": "r" * (RESULT_BYTES - 20)}
    assert checkpoint(daemon, op.id, 0, json.dumps(result)).decision == worker_pb2.DECISION_CONTINUE
    for n in range(40):
        request = worker_pb2.ReportProgressRequest(operation_id=op.id, step=1, fraction=n / 40, message=f"{n}")
        daemon.workers.ReportProgress(request, timeout=10)
    last_seq = daemon.get(op.id).last_seq
    assert last_seq >= 40
    for after in (0, 7):
        stream = daemon.ops.Watch(pb.WatchRequest(operation_id=op.id, after_seq=after), timeout=30)
        events = first(stream, last_seq - after)
        stream.cancel()
        assert [e.event.seq for e in events] == list(range(after + 1, last_seq + 1))
        assert all(from_value(e.event.operation.result) == result for e in events if e.event.seq >= 3)


def test_report_steps_fails_only_the_operation_with_the_bad_result(daemon: Daemon) -> None:
    good, bad = daemon.start(), daemon.start()
    steps = [
        worker_pb2.CheckpointRequest(operation_id=bad.id, step=0, result_json="1"),
        worker_pb2.CheckpointRequest(operation_id=good.id, step=0, result_json="1"),
        worker_pb2.CheckpointRequest(operation_id=bad.id, step=1, result_json=json.dumps(nested(DEPTH + 5))),
        worker_pb2.CheckpointRequest(operation_id=good.id, step=1, result_json=json.dumps(nested(DEPTH))),
    ]
    answer = daemon.workers.ReportSteps(worker_pb2.ReportStepsRequest(steps=steps), timeout=10)
    assert answer.recorded == 3
    assert daemon.get(good.id).current_step == 2
    failed = daemon.get(bad.id)
    assert (failed.state, failed.error.code, failed.current_step) == (pb.OPERATION_STATE_FAILED, "RESULT_TOO_DEEP", 1)


# -- workflows -----------------------------------------------------------------


def test_schema_and_plan_depth_and_size(daemon: Daemon) -> None:
    daemon.register("test.deep-schema", schema={"type": "object", "default": nested(DEPTH - 1)})
    for schema, plan, setting in (
        ({"type": "object", "default": nested(DEPTH)}, PLAN, "max_json_depth"),
        ({"type": "object", "description": "x" * WORKFLOW_BYTES}, PLAN, "max_workflow_bytes"),
        (None, [*PLAN, {"task": "t", "options": {"x": nested(DEPTH)}}], "max_json_depth"),
        (None, [{"task": "t", "kwargs": {"x": "y" * WORKFLOW_BYTES}}], "max_workflow_bytes"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            daemon.register("test.too-much", schema=schema, plan=plan)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert setting in caught.value.details()


def test_a_backtracking_pattern_is_matched_in_linear_time(daemon: Daemon) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(b+)+$": {"type": "integer"}},
        "unevaluatedProperties": False,
    }
    daemon.register("test.regex", schema=schema)
    assert daemon.start({"name": "aaaa", "bbb": 1}, workflow="test.regex").state == pb.OPERATION_STATE_RUNNING
    began = time.monotonic()
    for data in ({"name": "a" * 5000 + "!"}, {"b" * 5000 + "!": 1}):
        error = rejected(daemon.ops.StartOperation, pb.StartOperationRequest(workflow="test.regex", input=to_value(data)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert time.monotonic() - began < 2.0


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)b", "(?<!x)y"])
def test_a_pattern_re2_cannot_compile_is_refused_at_registration(daemon: Daemon, pattern: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        daemon.register("test.bad-regex", schema={"type": "string", "pattern": pattern})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "RE2" in caught.value.details()


def test_an_invalid_schema_is_refused_at_registration(daemon: Daemon) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        daemon.register("test.bad-schema", schema={"type": 5})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid JSON Schema" in caught.value.details()


# -- ListOperations ------------------------------------------------------------


def test_list_rows_leave_input_and_result_out_unless_asked(daemon: Daemon) -> None:
    op = daemon.start({"big": "y" * 100})
    checkpoint(daemon, op.id, 0, json.dumps({"r": 1}))
    request = pb.ListOperationsRequest(workflow="test.limits", page_size=1000)
    for view in (pb.OPERATION_VIEW_UNSPECIFIED, pb.OPERATION_VIEW_BASIC):
        request.view = view
        [row] = [o for o in daemon.ops.ListOperations(request, timeout=10).operations if o.id == op.id]
        assert not row.HasField("input") and not row.HasField("result")
        assert row.current_step == 1
    request.view = pb.OPERATION_VIEW_FULL
    [row] = [o for o in daemon.ops.ListOperations(request, timeout=10).operations if o.id == op.id]
    assert row.input.struct_value.fields["big"].string_value == "y" * 100
    assert row.result.struct_value.fields["r"].number_value == 1
    request.view = 7  # type: ignore[assignment]
    assert rejected(daemon.ops.ListOperations, request).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_page_ends_before_it_grows_past_the_byte_bound(daemon: Daemon) -> None:
    """list_page_bytes is 20000 here; each operation's input is about 4 kB."""
    daemon.register("test.paged")
    started = {daemon.start({"s": "z" * 4000}, workflow="test.paged").id for _ in range(12)}
    request = pb.ListOperationsRequest(workflow="test.paged", page_size=1000, view=pb.OPERATION_VIEW_FULL)
    seen: list[str] = []
    pages = 0
    while True:
        page = daemon.ops.ListOperations(request, timeout=10)
        pages += 1
        assert 1 <= len(page.operations) <= 5
        assert page.ByteSize() <= 20000
        seen.extend(o.id for o in page.operations)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert pages >= 3
    assert len(seen) == len(set(seen)) and set(seen) == started
    basic = daemon.ops.ListOperations(pb.ListOperationsRequest(workflow="test.paged", page_size=1000), timeout=10)
    assert {o.id for o in basic.operations} == started and not basic.next_page_token


# -- the server ----------------------------------------------------------------


def test_calls_over_max_concurrent_rpcs_are_resource_exhausted(daemon: Daemon) -> None:
    """max_concurrent_rpcs is 40 here: open streams count; once they end, calls are served again."""
    op = daemon.start()
    streams = [daemon.ops.Watch(pb.WatchRequest(operation_id=op.id), timeout=20) for _ in range(45)]
    codes = []
    for stream in streams:
        try:
            next(stream)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert codes.count(grpc.StatusCode.OK) >= 30
    for stream in streams:
        stream.cancel()
    deadline = time.monotonic() + 10
    while True:
        try:
            daemon.get(op.id)
            break
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
            time.sleep(0.1)
