"""The `@step` decorator: a Celery task on pausable's app whose end is a pause point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from pausable.workers.app import app
from pausable.workers.task import PausableTask

INPUT_SCHEMA = "pausable_input_schema"  # the task attribute workflow() puts in the step's plan entry


def step(fn: Callable[..., Any] | None = None, *, input_schema: dict[str, Any] | None = None, **options: Any) -> Any:
    """Use as `@step` or `@step(name=..., max_retries=...)`; options go to `app.task`.

    `input_schema`: a JSON Schema the value this step receives must satisfy when a person supplies it (Resume with
    input, Fork with input); the daemon checks it and refuses a value that does not match (INVALID_ARGUMENT)."""

    def decorate(function: Callable[..., Any]) -> Task:
        task = app.task(base=PausableTask, **options)(function)
        if input_schema is not None:
            setattr(task, INPUT_SCHEMA, input_schema)
        return task

    return decorate(fn) if fn is not None else decorate
