"""OpenTelemetry: one trace from a client span through the daemon, the Celery steps and their checkpoints.

A private daemon and worker run with PAUSABLE_OTEL=1 and write their spans
as JSON lines to one file; the test process records its own spans in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from support.stack import Stack, step_completed, wait_event

try:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
except ImportError:
    pytest.skip("the otel extra is not installed: pip install -e '.[otel]' (or '.[dev]')", allow_module_level=True)

from pausable import tracing
from pausable.cli.launch import CLI, DaemonProcess, RedisServer, WorkerProcess
from pausable.clients import AsyncClient, Client
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

# span names as OpenTelemetry's gRPC instrumentation makes them (the full method), CLIENT and SERVER alike
START = "/pausable.v1.OperationService/StartOperation"
RESUME = "/pausable.v1.OperationService/Resume"
GET = "/pausable.v1.OperationService/GetOperation"
CHECKPOINT = "/pausable.v1.WorkerService/Checkpoint"
STEPS = 5


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """Redis, a daemon and a worker with tracing on, all writing spans to one file."""
    folder = tmp_path_factory.mktemp("traced")
    spans = folder / "spans.jsonl"
    redis = RedisServer(folder / "redis").start()
    daemon = DaemonProcess(
        f"sqlite+aiosqlite:///{folder / 'pausable.db'}", redis.url, folder / "daemon.log", otel="1", otel_file=str(spans)
    )
    worker = WorkerProcess(
        daemon.target, redis.url, folder / "worker.log", env={"PAUSABLE_OTEL": "1", "PAUSABLE_OTEL_FILE": str(spans)}
    )
    stack = Stack(redis, daemon.start(), worker.start(), folder)
    try:
        stack.wait_for_workflows({"demo.etl"})
        yield stack, spans
    finally:
        stack.stop()
        redis.stop()


@pytest.fixture
def local_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, InMemorySpanExporter]]:
    """A tracer of the test's own, not the global one (so other tests are untouched).

    PAUSABLE_OTEL=1 makes the SDK carry the trace although no global provider is set.
    """
    monkeypatch.setenv("PAUSABLE_OTEL", "1")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def read_spans(path: Path, until: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The span file's records once `until(records)` holds (the worker ends a step's span just after its checkpoint)."""
    deadline = time.monotonic() + timeout
    while True:
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if until(records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"the spans awaited are not in {path} after {timeout}s: {[r['name'] for r in records]}")
        time.sleep(0.05)


def hex_ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def step_spans(records: list[dict[str, Any]], operation_id: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in records if r["name"].startswith("run/") and r["attributes"].get("pausable.operation_id") == operation_id),
        key=lambda r: r["attributes"]["pausable.step"],
    )


def test_client_daemon_steps_and_checkpoints_share_one_trace(
    traced: tuple[Stack, Path], local_tracer: tuple[Any, InMemorySpanExporter]
) -> None:
    stack, path = traced
    provider, exporter = local_tracer
    tracer = provider.get_tracer("test")
    with Client(stack.target) as client:
        with tracer.start_as_current_span("test-client") as root:
            op = client.start("demo.etl", {"rows": 6, "step_seconds": 0})
        assert op.wait(timeout=60)["steps"] == ["T1", "T2", "T3", "T4", "T5"]
    trace_id, root_id = hex_ids(root)

    def complete(records: list[dict[str, Any]]) -> bool:
        mine = [r for r in records if r["trace_id"] == trace_id]
        calls = [r["kind"] for r in mine if r["name"] == CHECKPOINT]
        return len(step_spans(mine, op.id)) == STEPS and calls.count("SERVER") == calls.count("CLIENT") == STEPS

    records = read_spans(path, complete)
    mine = [r for r in records if r["trace_id"] == trace_id]

    # client span → the daemon's StartOperation span
    (start,) = [r for r in mine if r["name"] == START and r["kind"] == "SERVER"]
    assert start["parent_span_id"] == root_id
    assert (start["kind"], start["service"], start["status"]) == ("SERVER", "pausable-daemon", "UNSET")

    # StartOperation dispatched the chain: every step runs in a worker span, child of StartOperation
    steps = step_spans(mine, op.id)
    assert [s["attributes"]["pausable.step"] for s in steps] == list(range(STEPS))
    assert all(s["parent_span_id"] == start["span_id"] and s["service"] == "pausable-worker" for s in steps)
    assert all(s["kind"] == "CONSUMER" and s["attributes"]["celery.state"] == "SUCCESS" for s in steps)

    # each step's Checkpoint call is a CLIENT span in the worker whose parent is that step's span,
    # and lands in the daemon as a SERVER span whose parent is that CLIENT span
    calls = {r["span_id"]: r for r in mine if r["name"] == CHECKPOINT and r["kind"] == "CLIENT"}
    checkpoints = [r for r in mine if r["name"] == CHECKPOINT and r["kind"] == "SERVER"]
    assert sorted(c["parent_span_id"] for c in checkpoints) == sorted(calls)
    assert sorted(c["parent_span_id"] for c in calls.values()) == sorted(s["span_id"] for s in steps)
    assert all(c["service"] == "pausable-worker" for c in calls.values())
    assert all(c["service"] == "pausable-daemon" for c in checkpoints)
    # (a checkpoint may be reported in the background after its step span ended: parent, not containment)
    for checkpoint in checkpoints:
        call = calls[checkpoint["parent_span_id"]]
        parent = next(s for s in steps if s["span_id"] == call["parent_span_id"])
        assert parent["start_unix_nano"] <= call["start_unix_nano"] <= checkpoint["start_unix_nano"]

    # nothing of this operation went to another trace
    assert all(r["trace_id"] == trace_id for r in records if r["attributes"].get("pausable.operation_id") == op.id)
    assert [s.name for s in exporter.get_finished_spans()] == ["test-client"]


def test_sdk_client_spans_sync_and_async(traced: tuple[Stack, Path], local_tracer: tuple[Any, InMemorySpanExporter]) -> None:
    """With a recording provider the SDK makes a CLIENT span per call, parent of the daemon's span;
    the AsyncClient carries the trace as the sync one does."""
    stack, path = traced
    provider, exporter = local_tracer
    tracer = provider.get_tracer("test")
    with Client(stack.target) as client:
        operation_id = client.start("demo.etl", {"rows": 2, "step_seconds": 0}).id
    channel = tracing.client_channel(grpc.insecure_channel(stack.target), tracer_provider=provider)
    with channel, tracer.start_as_current_span("sync-caller") as sync_root:
        stub = operation_pb2_grpc.OperationServiceStub(channel)
        stub.GetOperation(pb.GetOperationRequest(operation_id=operation_id), timeout=10)
        with tracer.start_as_current_span("missing") as missing_root, pytest.raises(grpc.RpcError):
            stub.GetOperation(pb.GetOperationRequest(operation_id="0" * 32), timeout=10)

    async def get_async() -> Any:
        async with AsyncClient(stack.target) as aio:
            with tracer.start_as_current_span("async-caller") as span:
                await aio.get(operation_id)
            return span

    async_root = asyncio.run(get_async())
    found, not_found = sorted((s for s in exporter.get_finished_spans() if s.name == GET), key=lambda s: s.start_time)
    assert found.parent.span_id == sync_root.get_span_context().span_id
    assert found.attributes["rpc.grpc.status_code"] == 0 and found.status.is_ok
    assert not_found.parent.span_id == missing_root.get_span_context().span_id
    assert not_found.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0] and not not_found.status.is_ok
    client_ids = {hex_ids(found)[1], hex_ids(not_found)[1], hex_ids(async_root)[1]}

    def all_three(records: list[dict[str, Any]]) -> bool:
        return client_ids <= {r["parent_span_id"] for r in records if r["name"] == GET and r["kind"] == "SERVER"}

    # each daemon span is the child of its caller's span (the CLIENT spans, or the async caller's own span)
    gets = {r["parent_span_id"]: r for r in read_spans(path, all_three) if r["name"] == GET and r["kind"] == "SERVER"}
    assert all(gets[parent]["trace_id"] == hex_ids(found)[0] for parent in (hex_ids(found)[1], hex_ids(not_found)[1]))
    assert gets[hex_ids(async_root)[1]]["trace_id"] == hex_ids(async_root)[0]
    # NOT_FOUND is the caller's error: the daemon's span keeps the code but is not marked failed
    missing = gets[hex_ids(not_found)[1]]
    assert (missing["attributes"]["rpc.grpc.status_code"], missing["status"]) == (5, "UNSET")


def test_resumed_steps_join_the_resume_calls_trace(
    traced: tuple[Stack, Path], local_tracer: tuple[Any, InMemorySpanExporter]
) -> None:
    stack, path = traced
    provider, _ = local_tracer
    tracer = provider.get_tracer("test")
    with Client(stack.target) as client:
        with tracer.start_as_current_span("starter") as starter:
            op = client.start("demo.etl", {"rows": 4, "step_seconds": 0.4})
        wait_event(client, op.id, step_completed(0), timeout=30)
        client.pause(op.id)
        wait_event(client, op.id, lambda e: e.operation.state == pb.OPERATION_STATE_PAUSED, timeout=30)
        with tracer.start_as_current_span("resumer") as resumer:
            client.resume(op.id)
        op.wait(timeout=60)
    start_trace, _ = hex_ids(starter)
    resume_trace, resumer_id = hex_ids(resumer)

    def done(records: list[dict[str, Any]]) -> bool:
        last = [s for s in step_spans(records, op.id) if s["attributes"]["pausable.step"] == STEPS - 1]
        return any(s["trace_id"] == resume_trace for s in last)

    records = read_spans(path, done)
    (resume,) = [r for r in records if r["name"] == RESUME and r["kind"] == "SERVER" and r["trace_id"] == resume_trace]
    assert resume["parent_span_id"] == resumer_id
    steps = step_spans(records, op.id)
    after = [s for s in steps if s["trace_id"] == resume_trace]
    first_after = after[0]["attributes"]["pausable.step"]
    before = [s for s in steps if s["trace_id"] == start_trace and s["attributes"]["pausable.step"] < first_after]
    # A task that found the stop flag as it started did not run its body; its step ran again after the Resume.
    dropped = [s for s in steps if s["trace_id"] == start_trace and s["attributes"]["pausable.step"] >= first_after]
    assert [s["attributes"]["pausable.step"] for s in dropped] in ([], [first_after])
    assert len(before) >= 1 and len(before) + len(after) == STEPS
    assert all(s["parent_span_id"] == resume["span_id"] for s in after)
    assert [s["attributes"]["pausable.step"] for s in before + after] == list(range(STEPS))


def test_cli_commands_start_a_trace_with_pausable_otel_file(traced: tuple[Stack, Path]) -> None:
    """`PAUSABLE_OTEL_FILE=… pausable start` records a CLIENT span, parent of the daemon's StartOperation."""
    stack, path = traced
    run = subprocess.run(
        [*CLI, "--daemon", stack.target, "-o", "json", "start", "demo.etl", "-i", '{"rows": 2, "step_seconds": 0}'],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PAUSABLE_OTEL_FILE": str(path)},
    )
    assert run.returncode == 0, run.stderr
    operation_id = json.loads(run.stdout)["id"]

    def started(records: list[dict[str, Any]]) -> bool:
        return len(step_spans(records, operation_id)) == STEPS

    records = read_spans(path, started)
    steps = step_spans(records, operation_id)
    (server,) = [r for r in records if r["name"] == START and r["span_id"] == steps[0]["parent_span_id"]]
    (client,) = [r for r in records if r["span_id"] == server["parent_span_id"]]
    assert (client["name"], client["kind"], client["service"], client["parent_span_id"]) == (
        START,
        "CLIENT",
        "pausable-cli",
        None,
    )
    assert {r["trace_id"] for r in (client, server, *steps)} == {client["trace_id"]}
