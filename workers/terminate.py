"""Cancel(force=true) in the worker: a Celery remote-control command that kills the pool process running a step
(also sent when a member of a stage failed, for the stage's other members).

The daemon broadcasts `pausable_terminate` with an operation id on the broker's control channel
(server/dispatch.py: Dispatcher.terminate) after it recorded the operation CANCELLED. Each worker's main process
looks for the requests it runs of that operation and terminates them as Celery's own `revoke --terminate` does
(Request.terminate: the pool process is killed, the message acknowledged, so nothing runs it again). The pool
starts a new process in its place. Steps still waiting in a queue drop themselves as they start (the daemon keeps
the operation's stop flag up). Only the prefork pool can kill a running step; under the threads or solo pools the
step runs on, and any report it sends changes nothing (the operation has ended).
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from celery.worker import state as worker_state
from celery.worker.control import control_command

from pausable.headers import OPERATION_HEADER

log = logging.getLogger("pausable.workers")
COMMAND = "pausable_terminate"  # the name server/dispatch.py broadcasts (TERMINATE_COMMAND)


@control_command(args=[("operation_id", str)], signature="<operation_id>")
def pausable_terminate(state: Any, operation_id: str) -> dict[str, str]:
    """Kill the pool process of every running request of `operation_id` (SIGKILL: a step may ignore SIGTERM)."""
    terminated = 0
    for request in list(worker_state.active_requests):
        if request.request_dict.get(OPERATION_HEADER) != operation_id:
            continue
        try:
            request.terminate(state.consumer.pool, signal=signal.SIGKILL)
            terminated += 1
        except Exception as error:  # noqa: BLE001 - a pool that cannot kill (threads, solo): the step runs on
            log.warning("operation %s: could not terminate task %s: %s", operation_id, request.id, error)
    if terminated:
        log.info(
            "operation %s was stopped (cancelled by force, or a stage member failed): terminated %d running step(s)",
            operation_id,
            terminated,
        )
    return {"ok": f"terminated {terminated}"}
