"""Background checkpoints: reports of steps whose chain has already moved on (see pausable/flags.py).

One sender thread per worker process sends them in order, those of up to
LINGER_SECONDS together in one ReportSteps call (fewer calls cost the
worker and the daemon less CPU per step; watchers see STEP_COMPLETED that
much later). It retries while the daemon is unreachable (DaemonLink.call),
so a daemon restart or a lost replica delays a report but does not drop
it. The queue is sent at once before any synchronous call of the process
(flush), and drained when the worker process shuts down.
"""

from __future__ import annotations

import logging
import os
import threading

from pausable import tracing
from pausable.config import get_settings
from pausable.workers.link import daemon
from pausable.workers.stop_flags import StopFlagMirror

log = logging.getLogger("pausable.workers")
LINGER_SECONDS = 0.02
MAX_BATCH = 100


class Reporter:
    def __init__(self) -> None:
        self._pending: list[tuple[str, int, int, str]] = []
        self._unsent = 0
        self._urgent = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="pausable-reporter", daemon=True)
        self._thread.start()

    def submit(self, operation_id: str, step: int, attempt: int, result_json: str) -> None:
        with self._changed:
            self._pending.append((operation_id, step, attempt, result_json))
            self._unsent += 1
            if len(self._pending) in (1, MAX_BATCH):
                self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Send every queued report now and wait until they are sent; False after `timeout` seconds.

        Called before each synchronous call to the daemon, so the daemon sees a process's reports in step order.
        """
        with self._changed:
            if self._unsent == 0:
                return True
            self._urgent = True
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self._unsent == 0, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending)
                self._changed.wait_for(lambda: self._urgent or len(self._pending) >= MAX_BATCH, LINGER_SECONDS)
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                self._send(batch)
            except Exception:
                log.exception("could not report %d steps", len(batch))
            finally:
                with self._changed:
                    self._unsent -= len(batch)
                    if self._unsent == 0:
                        self._urgent = False
                    self._changed.notify_all()

    @staticmethod
    def _send(batch: list[tuple[str, int, int, str]]) -> None:
        """One ReportSteps call; with tracing on, one call per step, so each joins its own step's trace."""
        if tracing.active():
            for operation_id, step, attempt, result_json in batch:
                with tracing.step_context(operation_id, step):
                    daemon().checkpoint(operation_id, step, result_json, attempt=attempt, continued=True)
        else:
            daemon().report_steps(batch)


class _PerProcess:
    """Objects that must not cross a fork (threads, sockets): made again in each worker process."""

    def __init__(self) -> None:
        self.pid = -1
        self.reporter: Reporter | None = None
        self.stop_flags: StopFlagMirror | None = None
        self.lock = threading.Lock()

    def get(self) -> _PerProcess:
        with self.lock:
            if self.pid != os.getpid():
                self.reporter = Reporter()
                self.stop_flags = StopFlagMirror(get_settings().broker_url)
                self.pid = os.getpid()
        return self


_local = _PerProcess()


def reporter() -> Reporter:
    found = _local.get().reporter
    assert found is not None
    return found


def stop_flags() -> StopFlagMirror:
    found = _local.get().stop_flags
    assert found is not None
    return found


def flush(timeout: float = 30.0) -> None:
    """Send this process's queued step reports (before a synchronous call to the daemon, and at shutdown)."""
    if _local.pid == os.getpid() and _local.reporter is not None and not _local.reporter.flush(timeout):
        log.warning("some step reports were not sent within %.0fs", timeout)
