"""What a step's task does when it finds its operation's stop flag as it starts (workers/task.py, may_start)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pausable.v1 import worker_pb2
from pausable.workers import step
from pausable.workers import task as task_module
from pausable.workers.link import StepReport
from pausable.workers.task import PausableTask, Position


class Mirror:
    def __init__(self) -> None:
        self.in_sync = True
        self.forgotten: list[str] = []

    def forget(self, operation_id: str) -> None:
        self.forgotten.append(operation_id)

    def asking(self, operation_id: str) -> bool:
        return False


class Queue:
    def __init__(self) -> None:
        self.reports: list[StepReport] = []

    def submit(self, report: StepReport) -> None:
        self.reports.append(report)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> tuple[Mirror, Queue, list[tuple[Any, ...]]]:
    mirror, queue, asked = Mirror(), Queue(), []

    def ask(position: Position, step: int, result_json: str, next_not_started: bool = False) -> int:
        asked.append((step, result_json, next_not_started))
        return worker_pb2.DECISION_CONTINUE

    monkeypatch.setattr(task_module, "stop_flags", lambda: mirror)
    monkeypatch.setattr(task_module, "reporter", lambda: queue)
    monkeypatch.setattr(task_module, "flush", lambda: None)
    monkeypatch.setattr(PausableTask, "_ask", staticmethod(ask))
    return mirror, queue, asked


@step(name="tests.unit.stop_before_body")
def passes_on(value: Any) -> Any:
    return value


@pytest.fixture
def task() -> Iterator[PausableTask]:
    """The step as a worker runs it: its request carries the rest of the chain."""
    running: PausableTask = passes_on
    running.push_request(chain=[{"task": "next"}])
    yield running
    running.pop_request()


def test_a_first_attempt_drops_the_step_and_reports_the_boundary_without_waiting(seen: Any, task: PausableTask) -> None:
    mirror, queue, asked = seen
    assert not task.may_start(Position("op", 2, 1, "token"), ({"rows": 3},))
    assert queue.reports == [StepReport("op", 1, 1, '{"rows": 3}', "token", next_not_started=True)]
    assert asked == [] and task.request.chain is None and mirror.forgotten == ["op"]


def test_a_later_attempt_asks_since_its_operation_stays_flagged_while_it_runs(seen: Any, task: PausableTask) -> None:
    """server/flags.py keeps a retried operation flagged; dropping its steps on that flag would never end."""
    _mirror, queue, asked = seen
    assert task.may_start(Position("op", 2, 2, "token"), ({"rows": 3},))
    assert asked == [(1, '{"rows": 3}', True)] and queue.reports == []
    assert task.request.chain == [{"task": "next"}]


def test_a_mirror_out_of_sync_asks(seen: Any, task: PausableTask) -> None:
    mirror, queue, asked = seen
    mirror.in_sync = False
    assert task.may_start(Position("op", 0, 1, "token"), ({},))
    assert asked == [(-1, "", True)] and queue.reports == []
