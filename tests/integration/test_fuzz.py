"""Fuzz every RPC of OperationService, WorkerService and the LRO service: only canonical status codes come back.

Request messages are drawn from their descriptors (hypothesis): strings with
any unicode and the ids of real operations, integers of every size and
sign, NaN and infinite doubles, unknown enum numbers, JSON values (some
nested deeper than protobuf decodes, built on the wire by hand), repeated
and map fields, and bytes appended after the message. No answer may be
INTERNAL, UNKNOWN, UNIMPLEMENTED or DATA_LOSS, and the daemon is SERVING
after. One daemon without workers (RegisterWorkflows is fuzzed too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_proto_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.wire import nested, struct_value_bytes

from pausable.cli.launch import DaemonProcess, RedisServer
from pausable.jsonvalue import to_value
from pausable.server import encoded
from pausable.v1 import operation_pb2, worker_pb2

pytestmark = pytest.mark.timeout(300)

SERVICES = [
    operation_pb2.DESCRIPTOR.services_by_name["OperationService"],
    worker_pb2.DESCRIPTOR.services_by_name["WorkerService"],
    operations_proto_pb2.DESCRIPTOR.services_by_name["Operations"],
]
METHODS = [method for service in SERVICES for method in service.methods]
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DATA_LOSS}
EXAMPLES = int(os.environ.get("PAUSABLE_FUZZ_EXAMPLES", "30"))
PLAN = [{"task": "nobody.runs.this", "args": [], "kwargs": {}, "options": {"queue": "no-worker-reads-this"}}] * 3
KNOWN: list[str] = []  # ids of real operations and workflow names, filled by the fixture

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(-(2**60), 2**60)
        | st.text(max_size=12)
    )
    tree = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=12,
    )
    return tree | st.integers(0, 32).map(nested) | st.integers(0, 45).map(lambda n: nested(n, "list"))


def texts() -> st.SearchStrategy[str]:
    weird = st.sampled_from(["", " ", "\x00", "\u202e", "🙂" * 50, "a" * 100_000, "0" * 32, "f" * 32, "operations/" + "0" * 32])
    return (
        st.text(max_size=40)
        | weird
        | st.sampled_from(KNOWN or ["x"])
        | st.builds(lambda k: "operations/" + k, st.sampled_from(KNOWN or ["x"]))
    )


def json_texts() -> st.SearchStrategy[str]:
    return json_values().map(json.dumps) | st.text(max_size=20) | st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        return st.integers(low, high) | st.sampled_from([low, high, 0, -1, 1, 2, 3][: 7 if low < 0 else 0] or [low, high, 0, 1])
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if kind == FieldDescriptor.TYPE_DOUBLE else 32)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 12)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.name.endswith("_json"):
        return json_texts()
    return texts()


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Any:
    message = message_factory.GetMessageClass(descriptor)()
    if descriptor.full_name == "google.protobuf.Value":
        message.CopyFrom(to_value(draw(json_values())))
        return message
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
                entries = draw(st.dictionaries(scalar(key_field), scalar(value_field), max_size=3))
                getattr(message, field.name).update(entries)
            elif depth >= 3:
                continue
            elif field.is_repeated:
                for item in draw(st.lists(messages(field.message_type, depth + 1), max_size=3)):
                    getattr(message, field.name).add().CopyFrom(item)
            else:
                getattr(message, field.name).CopyFrom(draw(messages(field.message_type, depth + 1)))
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(scalar(field), max_size=3)))
        else:
            setattr(message, field.name, draw(scalar(field)))
    return message


def requests(method: MethodDescriptor) -> st.SearchStrategy[bytes]:
    body = messages(method.input_type).map(lambda m: m.SerializeToString())
    value_fields = [
        f.number
        for f in method.input_type.fields
        if f.message_type is not None and f.message_type.full_name == "google.protobuf.Value"
    ]
    variants = [body, st.tuples(body, st.binary(max_size=30)).map(b"".join), st.binary(max_size=60)]
    if value_fields:
        deep = st.tuples(body, st.sampled_from(value_fields), st.integers(30, 80)).map(
            lambda t: t[0] + encoded.field(t[1], struct_value_bytes(t[2]))
        )
        variants.append(deep)
    return st.one_of(variants)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[grpc.Channel]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    process = DaemonProcess(f"sqlite+aiosqlite:///{folder / 'pausable.db'}", redis_server.url, folder / "daemon.log").start()
    channel = grpc.insecure_channel(process.target)
    register = channel.unary_unary(
        "/pausable.v1.WorkerService/RegisterWorkflows",
        worker_pb2.RegisterWorkflowsRequest.SerializeToString,
        worker_pb2.RegisterWorkflowsResponse.FromString,
    )
    register(
        worker_pb2.RegisterWorkflowsRequest(workflows=[operation_pb2.Workflow(name="fuzz.idle", plan_json=json.dumps(PLAN))])
    )
    start = channel.unary_unary(
        "/pausable.v1.OperationService/StartOperation",
        operation_pb2.StartOperationRequest.SerializeToString,
        operation_pb2.StartOperationResponse.FromString,
    )
    KNOWN[:] = ["fuzz.idle", *(start(operation_pb2.StartOperationRequest(workflow="fuzz.idle")).operation.id for _ in range(3))]
    yield channel
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    process.stop()
    log = (folder / "daemon.log").read_text(errors="replace")
    assert "unexpected error" not in log, log[-5000:]


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_only_canonical_status_codes(daemon: grpc.Channel, method: MethodDescriptor) -> None:
    if method.client_streaming:
        pytest.skip("no client-streaming RPCs here")
    if method.server_streaming:
        call: Any = daemon.unary_stream(path(method))
    else:
        call = daemon.unary_unary(path(method))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(requests(method))
    def check(raw: bytes) -> None:
        try:
            if method.server_streaming:
                stream = call(raw, timeout=0.3)
                for index, _response in enumerate(stream):
                    if index >= 2:
                        stream.cancel()
                        break
            else:
                call(raw, timeout=5 if method.name != "WaitOperation" else 0.5)
        except grpc.RpcError as error:
            assert error.code() not in FORBIDDEN, f"{method.name}: {error.code()} {error.details()}"

    check()
