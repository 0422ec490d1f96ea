"""The `@step` decorator: a Celery task on pausable's app whose end is a pause point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from pausable.workers.app import app
from pausable.workers.task import PausableTask


def step(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Use as `@step` or `@step(name=..., max_retries=...)`; options go to `app.task`."""

    def decorate(function: Callable[..., Any]) -> Task:
        return app.task(base=PausableTask, **options)(function)

    return decorate(fn) if fn is not None else decorate
