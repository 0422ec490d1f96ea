"""Step leases: the worker tells the daemon, in the background, which steps it holds.

One thread in the worker's main process (where Celery keeps the requests it
has reserved and the ones running in its pool) sends the (operation, step,
attempt, step token, and stage member) of each of them every third of the step lease
(PAUSABLE_STEP_LEASE_SECONDS). No call per step: a worker holding nothing
sends nothing. When the whole worker dies, its leases lapse and the daemon
runs the steps again elsewhere (see pausable/server/engine.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from celery.worker import state

from pausable.config import get_settings
from pausable.headers import ATTEMPT_HEADER, MEMBER_HEADER, OPERATION_HEADER, STEP_HEADER, STEP_TOKEN_HEADER
from pausable.workers.link import from_settings

log = logging.getLogger("pausable.workers")


def held_steps() -> list[tuple[str, int, int, str, int]]:
    """The pausable steps (operation, step, attempt, step token, stage member or -1) this worker has reserved or is
    running."""
    held = set()
    for request in [*state.reserved_requests, *state.active_requests]:
        headers = request.request_dict
        operation_id = headers.get(OPERATION_HEADER)
        if operation_id is not None:
            held.add(
                (
                    str(operation_id),
                    int(headers.get(STEP_HEADER, 0)),
                    int(headers.get(ATTEMPT_HEADER, 0) or 0),
                    str(headers.get(STEP_TOKEN_HEADER) or ""),
                    int(headers.get(MEMBER_HEADER, -1)),
                )
            )
    return sorted(held)


class Heartbeat:
    def __init__(self, worker: str, interval: float) -> None:
        self.worker = worker
        self.interval = interval
        self._stopped = threading.Event()
        self._link = from_settings(patience=interval)
        self._thread = threading.Thread(target=self._run, name="pausable-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            held = held_steps()
            if not held:
                continue
            try:
                self._link.renew_leases(self.worker, held)
            except Exception as error:  # noqa: BLE001 - the next beat tries again; a lapse costs a re-run, not a loss
                log.warning("could not renew the leases of %d steps: %s", len(held), error)


_heartbeat: Heartbeat | None = None


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    global _heartbeat
    _heartbeat = Heartbeat(getattr(sender, "hostname", "") or "worker", get_settings().step_lease_seconds / 3)
    _heartbeat.start()


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
