"""Prometheus metrics, JSON logs with operation_id, and a health service that follows the store and the broker.

Each test starts its own daemon (metrics on a free port, JSON logs) so it can
read that daemon's log file and counters without other tests' traffic.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from support.servers import PostgresServer
from support.stack import Stack, history, state_is, step_completed, wait_event

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess, free_port
from pausable.clients import Client
from pausable.clients.errors import NotFound
from pausable.v1 import operation_pb2 as pb

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FAST_HEALTH = {"health_interval_seconds": "0.2", "health_timeout_seconds": "0.5"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers -------------------------------------------------------------------


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_metrics(url: str, predicate: Callable[[Samples], bool], timeout: float = 30.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if predicate(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics at {url} did not reach the expected values in {timeout}s")
        time.sleep(0.05)


def health_status(target: str, service: str = "") -> int | None:
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
        except grpc.RpcError:
            return None


def wait_health(
    target: str, want: int, timeout: float = 30.0, services: tuple[str, ...] = ("", "pausable.v1.OperationService")
) -> None:
    """Poll Check (every 50 ms at most) until every one of `services` reports `want`."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            seen = []
            for service in services:
                try:
                    seen.append(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status)
                except grpc.RpcError as error:
                    seen.append(error.code())
            if all(status == want for status in seen):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"health of {target} is {seen}, not {want}, after {timeout}s")
            time.sleep(0.05)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log file as a JSON object (fails on a line that is not one)."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line!r}") from None
        assert isinstance(entry, dict) and {"time", "level", "logger", "message"} <= entry.keys(), line
        lines.append(entry)
    return lines


def reachable_again(dependency: str) -> Callable[[list[dict[str, Any]]], bool]:
    """Whether the daemon's log says `dependency` is reachable again (an INFO line: written within log_flush_seconds)."""
    return lambda lines: any(line["message"] == f"the {dependency} is reachable again" for line in lines)


def wait_lines(path: Path, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        lines = json_lines(path)
        if predicate(lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} lacks the expected lines after {timeout}s")
        time.sleep(0.05)


# -- a stack with metrics and JSON logs ------------------------------------------


@dataclass
class Observed:
    stack: Stack
    metrics_url: str
    operation_id: str  # one run: started, paused after step 1, resumed, succeeded


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[Path], str]) -> Iterator[Observed]:
    folder = tmp_path_factory.mktemp("observed")
    redis = RedisServer(folder / "redis").start()
    metrics_port = free_port()
    daemon = DaemonProcess(
        make_database(folder), redis.url, folder / "daemon.log", metrics_port=str(metrics_port), log_format="json"
    )
    worker = WorkerProcess(daemon.target, redis.url, folder / "worker.log")
    worker.env["PAUSABLE_LOG_FORMAT"] = "json"
    stack = Stack(redis, daemon, worker, folder)
    try:
        daemon.start()
        worker.start()
        stack.wait_for_workflows({"demo.etl"})
        with stack.client() as client:
            op = client.start("demo.etl", {"rows": 6, "step_seconds": 0.6})
            wait_event(client, op.id, step_completed(0), timeout=30)
            assert client.pause(op.id).state == pb.OPERATION_STATE_PAUSE_REQUESTED
            wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
            client.resume(op.id)
            assert history(client, op.id)[-1].type == pb.EVENT_TYPE_SUCCEEDED
        yield Observed(stack, f"http://127.0.0.1:{metrics_port}/metrics", op.id)
    finally:
        stack.stop()
        redis.stop()


def test_metrics_after_a_pause_resume_run(observed: Observed) -> None:
    url, op_id = observed.metrics_url, observed.operation_id
    with observed.stack.client() as client, pytest.raises(NotFound):
        client.get("0" * 32)
    ops, workers = "pausable.v1.OperationService", "pausable.v1.WorkerService"

    def count(s: Samples, service: str, method: str, code: str = "OK") -> float:
        return value(s, "pausable_rpc_duration_seconds_count", service=service, method=method, code=code)

    # wait_event() leaves its stream early: the server sees those Watch calls end CANCELLED
    samples = wait_metrics(
        url, lambda s: count(s, ops, "GetOperation", "NOT_FOUND") == 1 and count(s, ops, "Watch", "CANCELLED") == 2
    )

    checkpoints = {d: value(samples, "pausable_checkpoints_total", decision=d) for d in ("CONTINUE", "PAUSE", "CANCEL", "STOP")}
    # One per step (the last answered STOP), and the report a step's task makes before its body when it sees a stop
    # flag: the pause is decided by one or the other. That report and the background report of the step before it
    # may come from two worker processes: when the stop's arrives first, it records that step, and the other is
    # answered STOP (it changes nothing).
    assert checkpoints["PAUSE"] == 1 and checkpoints["CANCEL"] == 0, checkpoints
    assert checkpoints["STOP"] in (1, 2), checkpoints
    assert checkpoints["CONTINUE"] >= 3, checkpoints
    assert 5 <= sum(checkpoints.values()) <= 7, checkpoints

    assert value(samples, "pausable_pause_latency_seconds_count") == 1
    latency = value(samples, "pausable_pause_latency_seconds_sum")
    assert 0 < latency < 30, "PAUSE_REQUESTED → PAUSED takes about the rest of one 0.6 s step"
    assert value(samples, "pausable_pause_latency_seconds_bucket", le="+Inf") == 1

    assert value(samples, "pausable_operations", state="SUCCEEDED") == 1
    assert value(samples, "pausable_operations", state="RUNNING") == 0
    assert ("pausable_operations", frozenset({("state", "PAUSED")})) in samples, "every state is exported, zeros too"
    assert value(samples, "pausable_events_total", type="PAUSED") == 1
    # 5 steps, the last SUCCEEDED: the paused one has its STEP_COMPLETED too when the pause was found before the next
    # step's body (its report had gone in the background), not at its own end (PAUSED "after step k" stands for it).
    assert value(samples, "pausable_events_total", type="STEP_COMPLETED") in (3, 4), "5 steps: one paused, the last succeeded"

    def rpc(service: str, method: str, code: str = "OK") -> float:
        return count(samples, service, method, code)

    assert rpc(ops, "StartOperation") == 1 and rpc(ops, "Pause") == 1 and rpc(ops, "Resume") == 1
    # Synchronous only after the last step, and at the flagged stop when it was found after a step's body; a stop
    # found before the next step's body is reported in the background, as the steps that went on are.
    assert rpc(workers, "Checkpoint") in (1, 2), "synchronous only at a stop found after a body and after the last step"
    assert 1 <= rpc(workers, "ReportSteps") <= 5, "the other steps reported in the background"
    assert rpc(ops, "Watch") == 1, "history() read its stream to the end"
    assert rpc("grpc.health.v1.Health", "Check") >= 1
    assert value(samples, "pausable_rpc_duration_seconds_bucket", service=ops, method="Pause", code="OK", le="+Inf") == 1

    assert value(samples, "pausable_dependency_up", dependency="store") == 1
    assert value(samples, "pausable_dependency_up", dependency="broker") == 1
    assert value(samples, "process_cpu_seconds_total") > 0
    assert op_id


def test_watchers_gauge_follows_open_streams(observed: Observed) -> None:
    url = observed.metrics_url
    with observed.stack.client() as client:
        op = client.start("demo.etl", {"rows": 3, "step_seconds": 5.0})
        stream = client.stub.Watch(pb.WatchRequest(operation_id=op.id), timeout=60)
        assert next(stream).event.seq == 1  # the server has subscribed before it replays
        wait_metrics(url, lambda s: value(s, "pausable_watchers") == 1)
        stream.cancel()
        samples = wait_metrics(url, lambda s: value(s, "pausable_watchers") == 0)
        assert value(samples, "pausable_operations", state="RUNNING") == 1
        client.cancel(op.id)
    wait_metrics(
        url,
        lambda s: (
            value(
                s, "pausable_rpc_duration_seconds_count", service="pausable.v1.OperationService", method="Watch", code="CANCELLED"
            )
            >= 1
        ),
    )


def test_json_logs_carry_the_operation_id(observed: Observed) -> None:
    op_id, folder = observed.operation_id, observed.stack.folder

    def succeeded(lines: list[dict[str, Any]]) -> bool:  # the daemon writes INFO lines within log_flush_seconds
        return any(line.get("operation_id") == op_id and line["message"].startswith("SUCCEEDED") for line in lines)

    daemon_lines = wait_lines(folder / "daemon.log", succeeded)
    about = [line for line in daemon_lines if line.get("operation_id") == op_id]
    lifecycle = [line["message"].split(":")[0] for line in about if line["logger"] == "pausable.operations"]
    assert lifecycle == ["STARTED", "PAUSE_REQUESTED", "PAUSED", "RESUMED", "SUCCEEDED"], lifecycle
    commands = [line["message"].split()[0:2] for line in about if line["logger"] == "pausable.server.rpc"]
    assert commands == [["StartOperation", "OK"], ["Pause", "OK"], ["Resume", "OK"]], commands
    for line in daemon_lines:
        if op_id in line["message"]:
            assert line.get("operation_id") == op_id, line
    assert any("listening on port" in line["message"] for line in daemon_lines)
    assert any(line["message"].startswith("pausable daemon serving on") for line in daemon_lines), "print() output is JSON too"

    def five_steps(lines: list[dict[str, Any]]) -> bool:
        return len([line for line in lines if line.get("operation_id") == op_id and " succeeded in " in line["message"]]) >= 5

    worker_lines = wait_lines(folder / "worker.log", five_steps)
    steps = {
        line["message"].split("[")[0].split()[-1]
        for line in worker_lines
        if line.get("operation_id") == op_id and " succeeded in " in line["message"]
    }
    assert steps == {f"demo.etl.{name}" for name in ("t1_extract", "t2_transform", "t3_filter", "t4_aggregate", "t5_save")}, steps
    assert any("registered workflows" in line["message"] for line in worker_lines)
    assert not any(line.get("operation_id") for line in worker_lines if "registered workflows" in line["message"])


# -- health ----------------------------------------------------------------------


def test_health_is_not_serving_while_the_broker_is_down(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    metrics_port = free_port()
    daemon = DaemonProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'pausable.db'}", redis.url, tmp_path / "daemon.log",
        metrics_port=str(metrics_port), log_format="json", **FAST_HEALTH,
    )  # fmt: skip
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        daemon.start()
        wait_health(daemon.target, SERVING)
        redis.stop()
        wait_health(daemon.target, NOT_SERVING)
        assert value(scrape(url), "pausable_dependency_up", dependency="broker") == 0
        assert value(scrape(url), "pausable_dependency_up", dependency="store") == 1
        with Client(daemon.target) as client:
            assert client.workflows() == [], "the daemon still answers while NOT_SERVING"

        redis.start()  # the same port
        wait_health(daemon.target, SERVING)
        assert value(scrape(url), "pausable_dependency_up", dependency="broker") == 1
        messages = [line["message"] for line in wait_lines(tmp_path / "daemon.log", reachable_again("broker"))]
        assert any(m.startswith("the broker is unreachable") for m in messages), messages
    finally:
        daemon.stop()
        redis.stop()


def test_health_is_not_serving_while_the_store_is_down(tmp_path: Path, postgres: PostgresServer) -> None:
    """A Postgres cluster of its own (the session one serves other tests) is stopped and started on its port."""
    del postgres  # only to skip/fail like the other Postgres tests when PostgreSQL is missing
    redis = RedisServer(tmp_path / "redis").start()
    cluster = PostgresServer().start()
    daemon = DaemonProcess(
        cluster.create_database("health"), redis.url, tmp_path / "daemon.log", log_format="json", **FAST_HEALTH
    )
    try:
        daemon.start()
        wait_health(daemon.target, SERVING)
        cluster.halt()
        wait_health(daemon.target, NOT_SERVING)
        cluster.restart()
        wait_health(daemon.target, SERVING)
        with Client(daemon.target) as client:
            assert list(client.list().operations) == [], "the store's own pool reconnects too"
        messages = [line["message"] for line in json_lines(tmp_path / "daemon.log")]
        assert any(m.startswith("the store is unreachable") for m in messages), messages
    finally:
        daemon.stop()
        cluster.stop()
        redis.stop()


def test_kombu_probe_for_non_redis_transports(tmp_path: Path) -> None:
    import asyncio

    from celery import Celery

    from pausable.server.healthcheck import KombuProbe

    redis = RedisServer(tmp_path / "redis").start()
    app = Celery("probe", broker=redis.url, set_as_current=False)
    probe = KombuProbe(app, timeout=1.0)
    try:
        asyncio.run(probe())
        redis.stop()
        with pytest.raises(Exception):  # noqa: B017 - whatever kombu raises for a refused connection
            asyncio.run(asyncio.wait_for(probe(), 5.0))
    finally:
        redis.stop()
        app.close()
