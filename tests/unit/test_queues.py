"""Per-workflow queues without a broker: each step of a plan carries its workflow's queue unless it names one."""

from __future__ import annotations

import json

import pytest

from pausable.workers import app, workflow
from pausable.workers.queues import plan_queues, workflow_queue


@pytest.mark.filterwarnings("ignore::celery.exceptions.CDeprecationWarning")  # a task's own `queue` attribute
def test_plan_steps_carry_their_workflow_queue_unless_they_name_one() -> None:
    @app.task(name="tests.routing.plain")
    def plain(value: int) -> int:
        return value

    @app.task(name="tests.routing.own_queue", queue="own")
    def own_queue(value: int) -> int:
        return value

    flow = workflow("tests.routing", [plain.s(), plain.s().set(queue="explicit"), own_queue.s()])
    queues = [entry["options"]["queue"] for entry in flow.plan]
    assert queues == [workflow_queue("tests.routing"), "explicit", "own", workflow_queue("tests.routing")]
    assert plan_queues([flow.plan]) == sorted({"pausable.tests.routing", "explicit", "own"})
    assert json.loads(flow.to_pb().plan_json) == flow.plan
