"""Sending an operation's remaining plan to the Celery broker as one chain.

The daemon needs no task code: each step is a signature by task name, and
the headers tell the worker-side checkpoint which operation and step it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Celery, chain

from pausable.headers import OPERATION_HEADER, STEP_HEADER


def plan_for(task_names: list[str]) -> list[dict[str, Any]]:
    """A workflow's plan: one signature dict per step, each fed the previous result."""
    return [{"task": name, "args": [], "kwargs": {}, "options": {}} for name in task_names]


class Dispatcher:
    def __init__(self, broker_url: str) -> None:
        self.app = Celery("pausable-daemon", broker=broker_url, set_as_current=False)
        self.app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True, broker_connection_timeout=5)

    def build(self, operation_id: str, plan: list[dict[str, Any]], start: int, argument: Any) -> Any:
        signatures = []
        for step in range(start, len(plan)):
            entry = plan[step]
            options = dict(entry.get("options") or {})
            options.pop("task_id", None)
            options["headers"] = {**(options.get("headers") or {}), OPERATION_HEADER: operation_id, STEP_HEADER: step}
            args = list(entry.get("args") or [])
            if step == start:
                args = [argument, *args]
            signatures.append(self.app.signature(entry["task"], args=args, kwargs=entry.get("kwargs") or {}, **options))
        return chain(*signatures)

    async def dispatch(self, operation_id: str, plan: list[dict[str, Any]], start: int, argument: Any) -> None:
        workflow = self.build(operation_id, plan, start, argument)
        await asyncio.to_thread(workflow.apply_async)

    def close(self) -> None:
        self.app.close()
