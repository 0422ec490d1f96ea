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
from celery.canvas import Signature, chord
from celery.canvas import group as celery_group
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
CANVAS_TASKS = frozenset({"celery.chain", "celery.group", "celery.chord"})  # what a canvas signature's task is named


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


@dataclass(frozen=True)
class Stage:
    """A stage of a workflow whose members run in parallel (see `group` and `each`); the next step receives the
    list of their results, in member order."""

    members: tuple[Task | Signature, ...]
    over: str | None = None  # a map: the key of the previous result holding the list (None: the result itself)
    mapped: bool = False
    max_parallel: int = 0

    def name(self) -> str:
        names = ", ".join(_short(_as_signature(member).task or "") for member in self.members)
        return f"each({names})" if self.mapped else f"group({names})"


def group(*members: Task | Signature, max_parallel: int = 0) -> Stage:
    """A stage running `members` in parallel, each fed the previous step's result; at most `max_parallel` at once
    (0: all). Pause and Cancel take effect at its boundary: running members finish, the others do not start."""
    if not members:
        raise ValueError("a group needs at least one member")
    return Stage(tuple(members), max_parallel=_parallel(max_parallel))


def each(member: Task | Signature, over: str | None = None, *, max_parallel: int = 0) -> Stage:
    """A map stage: `member` runs once per item of the previous step's result (of its key `over`, or the result
    itself when None, which must then be a list), at most `max_parallel` at once (0: all)."""
    return Stage((member,), over, mapped=True, max_parallel=_parallel(max_parallel))


def _parallel(max_parallel: int) -> int:
    if max_parallel < 0:
        raise ValueError("max_parallel must be 0 (no bound) or more")
    return max_parallel


def _short(task: str) -> str:
    return task.rsplit(".", 1)[-1]


def _stage_of(step: Any) -> Stage | None:
    """`step` as a stage: one of ours, or a Celery group in a hand-built chain (members fed the previous result)."""
    if isinstance(step, Stage):
        return step
    if isinstance(step, celery_group):
        return Stage(tuple(step.tasks))
    return None


def _steps_of(steps: list[Any]) -> list[Any]:
    """A chord (a group and its body) is a group stage then its body."""
    flat: list[Any] = []
    for step in steps:
        if isinstance(step, chord):
            flat.extend([Stage(tuple(step.tasks)), step.body])
        else:
            flat.append(step)
    return flat


def _stage_entry(workflow_name: str, stage: Stage) -> dict[str, Any]:
    """A stage's plan entry (server/stages.py): each member a chain of its task and, when that task does not
    checkpoint (a plain Celery task), a pass-through pause point that reports the member's result."""

    def chain_of(member: Task | Signature) -> list[dict[str, Any]]:
        signature = _as_signature(member)
        if signature.task in CANVAS_TASKS:
            raise TypeError(
                f"a member of stage {stage.name()} of workflow {workflow_name!r} is a {signature.task}: "
                "each member is one task (make a chain its own workflow's steps, or one task that does it all)"
            )
        chain = [_plan_entry(workflow_name, signature)]
        if not _checkpoints(signature):
            chain.append(_plan_entry(workflow_name, _pause_point(), inserted=True))
        return chain

    if stage.mapped:
        body: dict[str, Any] = {"each": chain_of(stage.members[0]), "over": stage.over}
    else:
        body = {"members": [chain_of(member) for member in stage.members]}
    body["max_parallel"] = stage.max_parallel
    return {"task": stage.name(), "stage": body}


def _pause_point() -> Signature:
    from pausable.workers.tap import pause_or_continue  # tap.py imports this package's app

    return pause_or_continue.s()


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
    steps: list[Task | Signature | Stage] | Signature,
    *,
    description: str = "",
    input_schema: dict[str, Any] | None = None,
    max_attempts: int = 0,
) -> Workflow:
    """Register a workflow: its steps run as one chain, each fed the previous result.

    `steps` is a list of tasks or signatures, or a chain (e.g. one made by
    `tappable`); a step may be a stage of parallel members: `group(a, b)`,
    `each(task, over="key")`, or a Celery group or chord in a hand-built
    chain. Steps made with `@step` are pause points; plain tasks run
    through to the next pause point. Every step goes to the queue
    `pausable.<name>` (unless it names its own), which only workers that
    registered the workflow consume. A step whose worker or message is
    lost runs again, up to `max_attempts` times in all (0: the daemon's
    default, 3), before the operation fails with WORKER_LOST.
    """
    if max_attempts < 0:
        raise ValueError(f"max_attempts of {name!r} must be 1 or more (0 for the default)")
    # A chain has .tasks; else steps is a list.
    given = _steps_of(list(steps.tasks) if hasattr(steps, "tasks") else list(cast("list[Any]", steps)))
    if not given:
        raise ValueError(f"workflow {name!r} has no steps")
    plan: list[dict[str, Any]] = []
    reports = True  # whether the entry before reports its end (a stage's is the daemon's join)
    for step in given:
        stage = _stage_of(step)
        if stage is not None:
            if not reports:  # the chain ends before a stage: its last task must checkpoint
                plan.append(_plan_entry(name, _pause_point(), inserted=True))
            plan.append(_stage_entry(name, stage))
            reports = True
            continue
        signature = _as_signature(step)
        plan.append(_plan_entry(name, signature))
        reports = _checkpoints(signature)
    if not reports:
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
