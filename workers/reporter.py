"""Background checkpoints: reports of steps whose chain has already moved on (see pausable/flags.py).

One sender thread per worker process sends them in order, those of a few
milliseconds together in one ReportSteps call, retrying while the daemon is
unreachable (DaemonLink.call), so a daemon restart or a lost replica delays a
report but does not drop it. The queue is drained when the worker process
shuts down.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

import redis

from pausable import flags, tracing
from pausable.config import get_settings
from pausable.workers.link import daemon

log = logging.getLogger("pausable.workers")
LINGER_SECONDS = 0.005
MAX_BATCH = 100


class Reporter:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, int, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="pausable-reporter", daemon=True)
        self._thread.start()

    def submit(self, operation_id: str, step: int, result_json: str) -> None:
        self._queue.put((operation_id, step, result_json))

    def flush(self, timeout: float) -> bool:
        """Wait until every queued report was sent; False after `timeout` seconds."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + LINGER_SECONDS
            while len(batch) < MAX_BATCH and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            try:
                self._send(batch)
            except Exception:  # noqa: BLE001 - the next report or a stop moves the operations on
                log.exception("could not report %d steps", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()


    @staticmethod
    def _send(batch: list[tuple[str, int, str]]) -> None:
        """One ReportSteps call; with tracing on, one call per step, so each joins its own step's trace."""
        if tracing.active():
            for operation_id, step, result_json in batch:
                daemon().checkpoint(operation_id, step, result_json, continued=True)
        else:
            daemon().report_steps(batch)


class _PerProcess:
    """Objects that must not cross a fork (threads, sockets): made again in each worker process."""

    def __init__(self) -> None:
        self.pid = -1
        self.reporter: Reporter | None = None
        self.redis: redis.Redis | None = None
        self.lock = threading.Lock()

    def get(self) -> _PerProcess:
        with self.lock:
            if self.pid != os.getpid():
                self.reporter = Reporter()
                self.redis = redis.Redis.from_url(get_settings().broker_url, socket_timeout=2, socket_connect_timeout=2)
                self.pid = os.getpid()
        return self


_local = _PerProcess()


def reporter() -> Reporter:
    found = _local.get().reporter
    assert found is not None
    return found


def stop_flagged(operation_id: str) -> bool:
    """Whether the daemon flagged the operation to stop; True when Redis cannot tell (then the daemon decides)."""
    client: Any = _local.get().redis
    try:
        return bool(client.exists(flags.key(operation_id)))
    except redis.RedisError:
        return True


def flush(timeout: float = 30.0) -> None:
    if _local.pid == os.getpid() and _local.reporter is not None and not _local.reporter.flush(timeout):
        log.warning("some step reports were not sent within %.0fs", timeout)
