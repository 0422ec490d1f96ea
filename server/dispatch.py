"""Sending an operation's remaining plan to the Celery broker as one chain.

The daemon needs no task code: each step is a signature by task name, and
the headers tell the worker-side checkpoint which operation and step it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery

from pausable import tracing
from pausable.headers import OPERATION_HEADER, STEP_HEADER
from pausable.server.batching import BatchingThread, Outcome
from pausable.server.flags import StopFlags


def plan_for(task_names: list[str]) -> list[dict[str, Any]]:
    """A workflow's plan: one signature dict per step, each fed the previous result."""
    return [{"task": name, "args": [], "kwargs": {}, "options": {}} for name in task_names]


class Dispatcher:
    def __init__(self, broker_url: str) -> None:
        self.flags = StopFlags(broker_url)
        self.app = Celery("pausable-daemon", broker=broker_url, set_as_current=False)
        self.app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True, broker_connection_timeout=5)
        self._publisher: BatchingThread[list[dict[str, Any]]] = BatchingThread("pausable-publisher", self._publish)

    @staticmethod
    def messages(operation_id: str, plan: list[dict[str, Any]], start: int, argument: Any) -> list[dict[str, Any]]:
        """The remaining steps as signature dicts, each with the headers naming its operation and step."""
        steps = []
        trace_headers = tracing.headers()  # traceparent of the calling RPC's span; {} when tracing is off
        for step in range(start, len(plan)):
            entry = plan[step]
            options = {key: value for key, value in (entry.get("options") or {}).items() if key != "task_id"}
            options["headers"] = {**(options.get("headers") or {}), OPERATION_HEADER: operation_id, STEP_HEADER: step, **trace_headers}
            args = list(entry.get("args") or [])
            if step == start:
                args = [argument, *args]
            steps.append({"task": entry["task"], "args": args, "kwargs": entry.get("kwargs") or {}, "options": options, "subtask_type": None, "immutable": False})
        return steps

    def _send(self, steps: list[dict[str, Any]]) -> None:
        """Send the first step with the rest as its `chain` (the protocol-2 message a Celery chain makes).

        Building a celery.chain of N signatures costs O(N) canvas work
        (freeze, clone, deep copies) per dispatch; the message is the same.
        """
        first, *rest = steps
        self.app.send_task(first["task"], args=first["args"], kwargs=first["kwargs"], chain=list(reversed(rest)) or None, **first["options"])

    async def dispatch(self, operation_id: str, plan: list[dict[str, Any]], start: int, argument: Any) -> None:
        """The messages are built here, in the caller's context (its trace); one thread sends them."""
        await self._publisher.submit(self.messages(operation_id, plan, start, argument))

    def _publish(self, batch: Sequence[list[dict[str, Any]]]) -> list[Outcome]:
        """One thread, one broker connection, the sends of a moment in a row (no thread pool, no pool contention)."""
        outcomes: list[Outcome] = []
        for steps in batch:
            try:
                self._send(steps)
                outcomes.append((None, None))
            except Exception as error:  # noqa: BLE001 - handed to the caller
                outcomes.append((None, error))
        return outcomes

    def close(self) -> None:
        self._publisher.close()
        self.app.close()
