"""RegisterWorkflows is checked: plan steps carry only queue and priority, named tasks, a bounded number of steps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pausable.server.errors import InvalidArgument
from pausable.server.workers_api import MAX_PLAN_STEPS, _workflow
from pausable.v1 import operation_pb2 as pb


def step(task: str = "tests.task", **options: Any) -> dict[str, Any]:
    return {"task": task, "args": [], "kwargs": {}, "options": options}


def register(plan: list[Any]) -> Any:
    return _workflow(pb.Workflow(name="tests.flow", plan_json=json.dumps(plan)))


def test_queue_and_priority_are_accepted() -> None:
    flow = register([step(queue="pausable.tests.flow", priority=5), step()])
    assert flow.steps == ["tests.task", "tests.task"]


@pytest.mark.parametrize("option", ["headers", "task_id", "link", "link_error", "countdown", "exchange", "routing_key"])
def test_any_other_option_is_refused_by_name(option: str) -> None:
    with pytest.raises(InvalidArgument, match=f"option '{option}'"):
        register([step(queue="q"), step(**{option: {"pausable_operation_id": "x"}})])


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (step(""), "task name"),
        (step("   "), "task name"),
        (step("x" * 201), "task name"),
        (step(queue=""), "queue"),
        (step(queue=7), "queue"),
        (step(priority="high"), "priority"),
        (step(priority=True), "priority"),
        (step(priority=256), "priority"),
        ({"task": "t", "args": "abc"}, "args"),
        ({"task": "t", "kwargs": [1]}, "kwargs"),
        ({"task": "t", "options": [1]}, "options"),
    ],
)
def test_malformed_steps_are_refused(entry: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        register([entry])


def test_plans_are_bounded() -> None:
    register([step()] * MAX_PLAN_STEPS)
    with pytest.raises(InvalidArgument, match=f"at most {MAX_PLAN_STEPS}"):
        register([step()] * (MAX_PLAN_STEPS + 1))


def test_task_names_from_steps_are_checked_too() -> None:
    with pytest.raises(InvalidArgument, match="task name"):
        _workflow(pb.Workflow(name="tests.flow", steps=["ok", ""]))


def test_workflow_names_are_bounded() -> None:
    with pytest.raises(InvalidArgument, match="workflow name"):
        _workflow(pb.Workflow(name="w" * 201, steps=["ok"]))


def test_the_registry_refuses_options_the_daemon_would() -> None:
    from pausable.workers import app, workflow

    @app.task(name="tests.register_checks.plain")
    def plain(value: int) -> int:
        return value

    with pytest.raises(ValueError, match="countdown"):
        workflow("tests.register_checks", [plain.s().set(countdown=5)])


def test_a_steps_input_schema_must_be_a_schema_object() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert register([{**step(), "input_schema": schema}]).plan[0]["input_schema"] == schema
    with pytest.raises(InvalidArgument, match="input_schema must be a JSON Schema object"):
        register([{**step(), "input_schema": [1]}])
    with pytest.raises(InvalidArgument):
        register([{**step(), "input_schema": {"type": "nonsense"}}])
