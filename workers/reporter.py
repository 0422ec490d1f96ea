"""Background checkpoints: reports of steps whose chain has already moved on (see pausable/flags.py).

One sender thread per worker process sends them in order, retrying while
the daemon is unreachable (DaemonLink.call), so a daemon restart or a lost
replica delays a report but does not drop it. The queue is drained when the
worker process shuts down.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

import redis

from pausable import flags
from pausable.config import get_settings
from pausable.workers.link import daemon

log = logging.getLogger("pausable.workers")


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
            operation_id, step, result_json = self._queue.get()
            try:
                daemon().checkpoint(operation_id, step, result_json, continued=True)
            except Exception:  # noqa: BLE001 - the next report or a stop moves the operation on
                log.exception("could not report step %d of %s", step, operation_id)
            finally:
                self._queue.task_done()


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
