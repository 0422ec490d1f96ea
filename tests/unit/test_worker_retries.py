"""Unit tests (fakes, no servers) of the worker side of "the control plane being down never fails a step"."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc
import pytest

from pausable.v1 import worker_pb2
from pausable.workers import link as link_module
from pausable.workers import reporter as reporter_module
from pausable.workers.link import DaemonLink, StepReport
from pausable.workers.reporter import Reporter


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"fake {self._code.name}"


class FakeStub:
    """Fails each call with the given codes in turn, then answers; records every request."""

    def __init__(self, failures: list[grpc.StatusCode]) -> None:
        self.failures = list(failures)
        self.requests: list[Any] = []
        self.timeouts: list[float | None] = []

    def _answer(self, reply: Any) -> Any:
        def call(request: Any, timeout: float | None = None) -> Any:
            self.requests.append(request)
            self.timeouts.append(timeout)
            if self.failures:
                raise FakeRpcError(self.failures.pop(0))
            return reply

        return call

    def __getattr__(self, name: str) -> Any:
        replies = {
            "Checkpoint": worker_pb2.CheckpointResponse(decision=worker_pb2.DECISION_CONTINUE),
            "ReportSteps": worker_pb2.ReportStepsResponse(),
            "ReportProgress": worker_pb2.ReportProgressResponse(),
            "FailOperation": worker_pb2.FailOperationResponse(),
        }
        return self._answer(replies[name])


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits of this test's thread (time.sleep is patched for every thread; others' sleeps are not the link's)."""
    slept: list[float] = []
    caller, real_sleep = threading.get_ident(), link_module.time.sleep

    def sleep(seconds: float) -> None:
        if threading.get_ident() == caller:
            slept.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(link_module.time, "sleep", sleep)
    return slept


def fake_link(stub: FakeStub) -> DaemonLink:
    link = DaemonLink("127.0.0.1:1")
    link.stub = lambda: stub  # type: ignore[method-assign]
    return link


TRANSIENT = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED]
OP = "0" * 32


def test_every_report_is_retried_without_a_time_cap_until_the_daemon_answers(
    no_sleep: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    link = fake_link(FakeStub([]))
    assert link.retry.patience is None, "no time cap by default"
    assert link.timeout, "each attempt still has a deadline, so a hung call is sent again"
    calls = {
        "checkpoint": lambda: link.checkpoint(OP, 1, "{}"),
        "report_steps": lambda: link.report_steps([StepReport(OP, 1, 0, "{}", "token")]),
        "progress": lambda: link.progress(OP, 1, 0.5, "half"),
        "fail": lambda: link.fail(OP, 1, "Boom", "boom", "t1"),
    }
    for name, call in calls.items():
        stub = FakeStub(TRANSIENT * 100)  # far more retries than any patience of the old 120 s would allow
        link.stub = lambda stub=stub: stub  # type: ignore[method-assign]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pausable.workers"):
            call()
        assert len(stub.requests) == 301, name
        assert len({r.SerializeToString() for r in stub.requests}) == 1, f"{name}: every retry sends the same request"
        assert all(t == link.timeout for t in stub.timeouts)
        outage = [r for r in caplog.records if "cannot take" in r.getMessage()]
        assert len(outage) == 1, f"{name}: one warning per outage, not per retry"
        assert any("answers again" in r.getMessage() for r in caplog.records)
        assert link.reachable
    assert max(no_sleep) <= 0.5, "once the daemon is back, waiting calls get through within half a second"


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION]
)
def test_the_callers_own_errors_are_not_retried(code: grpc.StatusCode, no_sleep: list[float]) -> None:
    stub = FakeStub([code])
    link = fake_link(stub)
    with pytest.raises(grpc.RpcError):
        link.checkpoint(OP, 1, "{}")
    assert len(stub.requests) == 1 and not no_sleep


class StalledLink:
    """The daemon is away until `back` is set; then it takes every report."""

    def __init__(self) -> None:
        self.back = threading.Event()
        self.delivered: list[StepReport] = []

    def report_steps(self, steps: list[StepReport]) -> None:
        self.back.wait()
        self.delivered.extend(steps)


def test_a_full_buffer_blocks_the_step_and_nothing_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = StalledLink()
    monkeypatch.setattr(reporter_module, "daemon", lambda: daemon)
    monkeypatch.setattr(reporter_module.tracing, "active", lambda: False)
    reporter = Reporter(max_pending=3)
    reports = [StepReport(OP, step, 0, f'{{"step": {step}}}', "token") for step in range(10)]
    submitted = threading.Event()

    def steps() -> None:
        for report in reports:
            reporter.submit(report)
        submitted.set()

    producer = threading.Thread(target=steps, daemon=True)
    producer.start()
    assert not submitted.wait(0.5), "submit blocks once the buffer is full (backpressure), instead of dropping"
    assert not reporter.flush(timeout=0.2), "flush waits for the daemon; the reports stay queued"
    daemon.back.set()
    assert submitted.wait(10)
    assert reporter.flush(timeout=10)
    assert daemon.delivered == reports, "every report delivered, once, in order"


class GatedLink:
    """Records each ReportSteps batch; a call waits until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.called = threading.Event()
        self.batches: list[list[StepReport]] = []

    def report_steps(self, steps: list[StepReport]) -> None:
        self.batches.append(list(steps))
        self.called.set()
        self.release.wait()


def test_a_report_goes_alone_when_none_is_on_its_way_and_those_that_come_meanwhile_go_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    daemon = GatedLink()
    monkeypatch.setattr(reporter_module, "daemon", lambda: daemon)
    monkeypatch.setattr(reporter_module.tracing, "active", lambda: False)
    reporter = Reporter()
    reports = [StepReport(OP, step, 0, f'{{"step": {step}}}', "token") for step in range(4)]
    reporter.submit(reports[0])
    assert daemon.called.wait(10), "the first report is sent without waiting for more"
    for report in reports[1:]:
        reporter.submit(report)  # while the first call is on its way
    daemon.release.set()
    assert reporter.flush(timeout=10)
    assert daemon.batches == [reports[:1], reports[1:]], "one call for the first, the rest together next, in order"


def lingering(monkeypatch: pytest.MonkeyPatch, quiet: float, count: int) -> tuple[GatedLink, Reporter, list[StepReport]]:
    """`count` reports of stage members submitted to a fresh Reporter whose quiet period is `quiet` (no cap)."""
    daemon = GatedLink()
    daemon.release.set()
    monkeypatch.setattr(reporter_module, "daemon", lambda: daemon)
    monkeypatch.setattr(reporter_module.tracing, "active", lambda: False)
    monkeypatch.setattr(reporter_module, "MEMBER_QUIET_SECONDS", quiet)
    monkeypatch.setattr(reporter_module, "MEMBER_LINGER_SECONDS", 3600.0)
    reporter = Reporter()
    reports = [StepReport(OP, 1, 0, f'{{"member": {member}}}', "token", member=member) for member in range(count)]
    for report in reports:
        reporter.submit(report)
    return daemon, reporter, reports


def test_members_reports_linger_while_more_come_and_a_flush_sends_them_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, reporter, reports = lingering(monkeypatch, 3600.0, 5)
    assert not daemon.called.wait(0.2), "a member's report waits for others to go with it"
    assert reporter.flush(timeout=10), "a flush (a synchronous call coming) ends the wait"
    assert daemon.batches == [reports], "one call, in order"


def test_a_members_report_goes_once_the_reports_stop_coming(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, _reporter, reports = lingering(monkeypatch, 0.01, 3)
    deadline = time.monotonic() + 10
    while sum(map(len, daemon.batches)) < len(reports) and time.monotonic() < deadline:
        time.sleep(0.01)
    delivered = [report for batch in daemon.batches for report in batch]
    assert delivered == reports, "sent once no report came for the quiet period, without a flush, long before the cap"
