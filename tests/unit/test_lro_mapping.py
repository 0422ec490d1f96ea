"""google.longrunning mapping without a daemon: the ListOperations filter grammar and how each ending maps to an LRO."""

from __future__ import annotations

import json

import pytest
from google.rpc import code_pb2
from support.lro import metadata, response

from pausable.server.convert import OperationParts, operation_parts, operation_to_pb
from pausable.server.domain import Operation
from pausable.server.errors import InvalidArgument
from pausable.server.longrunning import parse_filter, to_lro
from pausable.server.states import State
from pausable.v1 import operation_pb2 as pb


def test_filter_grammar() -> None:
    assert list(parse_filter("").states) == [] and parse_filter("").workflow == ""
    query = parse_filter("state=running,PAUSED workflow=demo.etl")
    assert set(query.states) == {pb.OPERATION_STATE_RUNNING, pb.OPERATION_STATE_PAUSED} and query.workflow == "demo.etl"
    assert set(parse_filter("done=true").states) == {
        pb.OPERATION_STATE_SUCCEEDED,
        pb.OPERATION_STATE_FAILED,
        pb.OPERATION_STATE_CANCELLED,
    }
    assert list(parse_filter("done=true AND state=SUCCEEDED,RUNNING").states) == [pb.OPERATION_STATE_SUCCEEDED]
    assert pb.OPERATION_STATE_PAUSED in parse_filter("done=false").states
    for bad in ("state", "state=", "done=maybe", "owner=me", "done=true state=RUNNING", "workflow=a workflow=b"):
        with pytest.raises(InvalidArgument):
            parse_filter(bad)


def parts(operation: pb.Operation) -> OperationParts:
    """An operation without values, in parts."""
    assert not operation.HasField("input") and not operation.HasField("result")
    return OperationParts(operation, {})


def test_mapping_of_each_ending() -> None:
    running = to_lro(
        parts(pb.Operation(id="a" * 32, state=pb.OPERATION_STATE_RUNNING, current_step=2, total_steps=5, progress=0.5))
    )
    assert running.name == "operations/" + "a" * 32 and not running.done and running.WhichOneof("result") is None
    assert metadata(running).progress == 0.5 and metadata(running).current_step == 2
    assert response(to_lro(parts(pb.Operation(id="b" * 32, state=pb.OPERATION_STATE_SUCCEEDED)))) is None
    broker = to_lro(
        parts(
            pb.Operation(
                id="c" * 32,
                state=pb.OPERATION_STATE_FAILED,
                error=pb.OperationError(code="BROKER_UNAVAILABLE", message="down", step=-1),
            )
        )
    )
    assert broker.error.code == code_pb2.UNAVAILABLE and broker.error.message == "BROKER_UNAVAILABLE: down"
    member = pb.OperationError(code="ValueError", message="bad row", step=1, step_number=2, step_name="m.each", member_index=7)
    failed = to_lro(parts(pb.Operation(id="d" * 32, state=pb.OPERATION_STATE_FAILED, total_steps=3, error=member)))
    assert failed.error.message == "ValueError in member 8 of step 2/3 m.each: bad row"


def test_metadata_serialized_in_parts_is_the_whole_operation() -> None:
    """to_lro packs the operation from its parts (values serialized one by one, shorter GIL holds): it still unpacks
    to the operation, and the response is the result; the basic metadata leaves out exactly the values."""
    data = {"rows": [{"n": n, "name": f"row-{n}", "x": n / 3} for n in range(500)]}
    stored = Operation(
        "0" * 32, "wf", State.SUCCEEDED, 3, 3, "s", 1.0, "", data, None, "me", {"a": "b"}, 1.0, 2.0, 3.0, 7,
        input_json=json.dumps(data),
    )  # fmt: skip
    operation = operation_to_pb(stored)
    reply = to_lro(operation_parts(stored))
    assert metadata(reply) == operation and reply.metadata.type_url.endswith("/pausable.v1.Operation")
    assert response(reply) == data
    basic = to_lro(operation_parts(stored), basic_metadata=True)
    expected = pb.Operation()
    expected.CopyFrom(operation)
    expected.ClearField("input")
    expected.ClearField("result")
    assert metadata(basic) == expected and expected.labels == {"a": "b"} and expected.result_json
    assert response(basic) == data
