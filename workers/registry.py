"""Workflows: a name and an ordered list of Celery tasks, registered with the daemon when a worker starts.

from pausable.workers import step, workflow

@step
def extract(source): ...

workflow("etl", [extract, transform, load], input_schema={"type": "object"})
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, cast

from celery import Task
from celery.canvas import Signature
from celery.signals import worker_ready

from pausable.headers import PLAN_OPTIONS
from pausable.jsonvalue import to_value
from pausable.v1 import operation_pb2
from pausable.workers.app import app
from pausable.workers.link import DaemonLink, daemon, from_settings
from pausable.workers.queues import step_queue
from pausable.workers.steps import INPUT_SCHEMA
from pausable.workers.task import PausableTask

log = logging.getLogger("pausable.workers")

PAUSE_POINT = "pausable.pause_or_continue"


@app.task(base=PausableTask, name="pausable.finish", stop_before_body=False)
def finish(result: Any) -> Any:
    """Appended to workflows whose last task does not checkpoint, so the operation still ends SUCCEEDED.

    Its stop check stays after its body: a stop requested once the last real step ran is too late, as for any last step.
    """
    return result


@dataclass(frozen=True)
class Workflow:
    name: str
    plan: list[dict[str, Any]]
    description: str = ""
    input_schema: dict[str, Any] | None = None
    max_attempts: int = 0

    def to_pb(self) -> operation_pb2.Workflow:
        message = operation_pb2.Workflow(
            name=self.name,
            description=self.description,
            steps=[entry["task"] for entry in self.plan],
            plan_json=json.dumps(self.plan),
            max_attempts=self.max_attempts,
        )
        if self.input_schema is not None:
            message.input_schema.CopyFrom(to_value(self.input_schema))
        return message


_workflows: dict[str, Workflow] = {}


def _as_signature(step: Task | Signature) -> Signature:
    return step if isinstance(step, Signature) else step.s()


def _checkpoints(signature: Signature) -> bool:
    task = app.tasks.get(signature.task or "")  # celery-types: a signature's task name may be None
    return isinstance(task, PausableTask) or signature.task == PAUSE_POINT


def _plan_entry(workflow_name: str, signature: Signature, inserted: bool = False) -> dict[str, Any]:
    """A signature dict; its `queue` is what routes the step, by the daemon and by every hop of the chain.

    `"inserted": true` marks a task pausable added, not one of the user's steps (a `pause_or_continue` pause point,
    the closing `finish`): it runs like the others, but users' step numbers ("step 2/3") do not count it.
    """
    options = {k: v for k, v in signature.options.items() if k != "task_id"}
    extra = sorted(set(options) - PLAN_OPTIONS)
    if extra:
        raise ValueError(
            f"step {signature.task!r} of workflow {workflow_name!r} sets the option {extra[0]!r}; "
            f"a plan step may carry only {', '.join(sorted(PLAN_OPTIONS))} (the daemon refuses the others)"
        )
    options["queue"] = step_queue(workflow_name, signature.task or "", options)
    entry: dict[str, Any] = {
        "task": signature.task,
        "args": list(signature.args),
        "kwargs": dict(signature.kwargs),
        "options": options,
    }
    if inserted or signature.task == PAUSE_POINT:
        entry["inserted"] = True
    schema = getattr(app.tasks.get(signature.task or ""), INPUT_SCHEMA, None)
    if schema is not None:
        entry["input_schema"] = schema
    return entry


def workflow(
    name: str,
    steps: list[Task | Signature] | Signature,
    *,
    description: str = "",
    input_schema: dict[str, Any] | None = None,
    max_attempts: int = 0,
) -> Workflow:
    """Register a workflow: its steps run as one chain, each fed the previous result.

    `steps` is a list of tasks or signatures, or a chain (e.g. one made by
    `tappable`). Steps made with `@step` are pause points; plain tasks run
    through to the next pause point. Every step goes to the queue
    `pausable.<name>` (unless it names its own), which only workers that
    registered the workflow consume. A step whose worker or message is
    lost runs again, up to `max_attempts` times in all (0: the daemon's
    default, 3), before the operation fails with WORKER_LOST.
    """
    if max_attempts < 0:
        raise ValueError(f"max_attempts of {name!r} must be 1 or more (0 for the default)")
    # A chain has .tasks; else steps is a list.
    signatures = (
        list(steps.tasks) if hasattr(steps, "tasks") else [_as_signature(s) for s in cast("list[Task | Signature]", steps)]
    )
    if not signatures:
        raise ValueError(f"workflow {name!r} has no steps")
    plan = [_plan_entry(name, s) for s in signatures]
    if not _checkpoints(signatures[-1]):
        plan.append(_plan_entry(name, finish.s(), inserted=True))
    flow = Workflow(name, plan, description or "", input_schema, max_attempts)
    _workflows[name] = flow
    return flow


def registered() -> list[Workflow]:
    return list(_workflows.values())


def register_all(link: DaemonLink | None = None, worker: str = "") -> None:
    """Announce every registered workflow to the daemon (retrying while it is unreachable)."""
    (link or daemon()).register([w.to_pb() for w in registered()], worker or socket.gethostname())


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    def announce() -> None:
        link = from_settings(patience=600.0)
        try:
            register_all(link, getattr(sender, "hostname", ""))
            log.info("registered workflows %s with the daemon", ", ".join(_workflows))
        except Exception:
            log.exception("could not register workflows with the daemon")
        finally:
            link.close()

    threading.Thread(target=announce, name="pausable-register", daemon=True).start()
