"""A queue per workflow, so each workflow's steps reach only workers that registered it.

Every step in a workflow's plan carries `queue` in its options (the
workflow's own queue unless the step or its task names one), and Celery
forwards a chain with each signature's options, so every hop of the chain
stays on that queue. At start a worker consumes the queues of the workflows
its modules registered, plus Celery's default queue for plain tasks.

A message that still reaches a worker without its task (a queue shared by
hand, a plan stored before queues existed) fails its operation with
TASK_NOT_REGISTERED instead of being dropped while the operation stays
RUNNING.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, task_rejected, task_unknown, worker_shutdown

from pausable.config import get_settings
from pausable.headers import ATTEMPT_HEADER, OPERATION_HEADER, STEP_HEADER, STEP_TOKEN_HEADER
from pausable.server import stages  # pure: what a stage entry holds
from pausable.workers.app import app
from pausable.workers.link import daemon

log = logging.getLogger("pausable.workers")

QUEUE_PREFIX = "pausable."
NOT_REGISTERED = "TASK_NOT_REGISTERED"
REJECTED = "TASK_REJECTED"
REPORT_JOIN_SECONDS = 10.0

_reports: list[threading.Thread] = []


def workflow_queue(workflow: str) -> str:
    return f"{QUEUE_PREFIX}{workflow}"


def step_queue(workflow: str, task_name: str, options: dict[str, Any]) -> str:
    """The step's own queue (its signature's option, else its task's `queue`), or its workflow's."""
    task = app.tasks.get(task_name)
    return options.get("queue") or getattr(task, "queue", None) or workflow_queue(workflow)


def plan_queues(plans: Iterable[list[dict[str, Any]]]) -> list[str]:
    """The queues of every step of these plans, a stage's members included."""
    return sorted({queue for plan in plans for entry in stages.entries(plan) if (queue := entry["options"].get("queue"))})


def default_queue(celery: Celery) -> str:
    return str(celery.conf.task_default_queue)


def select_queues(celery: Celery, names: Iterable[str]) -> list[str]:
    """Consume exactly these queues and the default one.

    The default queue stays so that plain tasks sent with `delay()` and plans
    stored before per-workflow queues still run somewhere.
    """
    selected = sorted({default_queue(celery), *names})
    celery.amqp.queues.select(selected)
    return selected


@celeryd_init.connect
def _consume_workflow_queues(instance: Any = None, options: dict[str, Any] | None = None, **_: Any) -> None:
    """After the worker imported its modules and before it sets up its consumer; `-Q` on the command line wins."""
    if getattr(instance, "app", None) is not app:
        return
    if (options or {}).get("queues"):
        log.info("consuming the queues given with -Q; workflow queues are not added")
        return
    from pausable.workers.registry import registered

    selected = select_queues(app, plan_queues(flow.plan for flow in registered()))
    log.info("consuming queues %s", ", ".join(selected))


def unregistered_message(name: str, worker: str, queue: str) -> str:
    modules = ", ".join(get_settings().worker_modules) or "none"
    return (
        f"task {name!r} reached worker {worker} (queue {queue!r}), which does not have it (its modules: {modules}). "
        f"Run a worker with the module that defines {name!r}: pausable worker -m <module>, "
        "or PAUSABLE_WORKER_MODULES=<module>,<module>"
    )


def _position(message: Any) -> tuple[str, int, int, str] | None:
    """(operation, step, attempt, step token) from a step message's headers; None for a message of no operation."""
    headers = getattr(message, "headers", None) or {}
    operation_id = headers.get(OPERATION_HEADER)
    if not operation_id:
        return None
    return (
        str(operation_id),
        int(headers.get(STEP_HEADER) or 0),
        int(headers.get(ATTEMPT_HEADER) or 0),
        str(headers.get(STEP_TOKEN_HEADER) or ""),
    )


def _report(position: tuple[str, int, int, str], code: str, text: str, name: str) -> None:
    """In a thread: the consumer's event loop must not wait on the daemon (the link retries while it is away)."""
    operation_id, step, attempt, token = position

    def send() -> None:
        try:
            daemon().fail(operation_id, step, code, text, name, attempt, step_token=token)
        except Exception:
            log.exception("could not report %s of operation %s to the daemon", code, operation_id)

    thread = threading.Thread(target=send, name="pausable-fail-report", daemon=True)
    _reports[:] = [t for t in _reports if t.is_alive()]
    _reports.append(thread)
    thread.start()


def _worker_name(consumer: Any) -> str:
    return str(getattr(consumer, "hostname", "") or socket.gethostname())


def _queue(message: Any) -> str:
    return str((getattr(message, "delivery_info", None) or {}).get("routing_key", ""))


@task_unknown.connect
def _fail_unregistered(sender: Any = None, message: Any = None, name: str = "", **_: Any) -> None:
    """Celery rejects (drops) a message whose task it lacks; the operation it belongs to fails, saying why."""
    position = _position(message)
    if position is None:
        return
    text = unregistered_message(name, _worker_name(sender), _queue(message))
    log.error("operation %s: %s", position[0], text)
    _report(position, NOT_REGISTERED, text, name)


@task_rejected.connect
def _fail_rejected(sender: Any = None, message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    """A step's message the worker could not decode is dropped too; its operation fails with the reason."""
    position = _position(message)
    if position is None:
        return
    name = str((getattr(message, "headers", None) or {}).get("task", ""))
    text = f"worker {_worker_name(sender)} rejected the message of task {name!r}: {exc or 'not a task message'}"
    log.error("operation %s: %s", position[0], text)
    _report(position, REJECTED, text, name)


@worker_shutdown.connect
def _finish_reports(**_: Any) -> None:
    deadline = time.monotonic() + REPORT_JOIN_SECONDS
    for thread in _reports:
        thread.join(max(deadline - time.monotonic(), 0.0))
