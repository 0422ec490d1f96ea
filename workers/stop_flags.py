"""A worker process's local copy of the stop flags (see pausable/flags.py), so a step boundary costs no round trip.

A thread subscribes to the daemon's flag channel, then reads every flag key
once, then applies each published change. Until that first read is done,
and whenever the subscription is broken, `flagged` falls back to one Redis
read per call, and when Redis cannot answer it says "flagged" so the daemon
decides. A stale local flag costs one extra call to the daemon (see
workers/task.py), after which the worker forgets it.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from pausable import flags
from pausable.config import get_settings
from pausable.per_process import PerProcess

log = logging.getLogger("pausable.workers")
RETRY_SECONDS = 1.0


class StopFlagMirror:
    def __init__(self, url: str) -> None:
        self._url = url
        self._flagged: set[str] = set()
        self._asking: set[str] = set()  # ask (breakpoint) flags: check in at each boundary, kept after a CONTINUE
        self._unsure: dict[str, tuple[float, bool]] = {}  # stopping()'s answers read from Redis while out of sync
        self._in_sync = threading.Event()
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._thread = threading.Thread(target=self._run, name="pausable-stop-flags", daemon=True)
        self._thread.start()

    def flagged(self, operation_id: str) -> bool:
        """Whether a step boundary of the operation must ask the daemon: a stop, or an ask (breakpoint) flag."""
        if self._in_sync.is_set():
            return operation_id in self._flagged or operation_id in self._asking
        try:
            return bool(self._client.exists(flags.key(operation_id)))
        except redis.RedisError:
            return True

    def stopping(self, operation_id: str) -> bool:
        """Whether a stop (pause or cancel, not a breakpoint) is flagged for the operation: what a running step's
        stop_requested() asks, many times a second. Unsure (not in sync, Redis away): one Redis read, else False,
        so the step works on and its boundary decides."""
        if self._in_sync.is_set():
            return operation_id in self._flagged
        now = time.monotonic()
        checked = self._unsure.get(operation_id)
        if checked is not None and now - checked[0] < RETRY_SECONDS:
            return checked[1]  # a step asks per item: at most one Redis read a second while out of sync
        try:
            value = self._client.get(flags.key(operation_id))
            answer = value is not None and (value.decode() if isinstance(value, bytes) else str(value)) != flags.ASK_REASON
        except redis.RedisError:
            answer = False
        if len(self._unsure) > 1000:
            self._unsure.clear()
        self._unsure[operation_id] = (time.monotonic(), answer)
        return answer

    def asking(self, operation_id: str) -> bool:
        """Whether only an ask (breakpoint) flag is up: not a stop of this step, a question at its boundaries."""
        return self._in_sync.is_set() and operation_id in self._asking and operation_id not in self._flagged

    @property
    def in_sync(self) -> bool:
        """Whether `flagged` answers from the subscription (else from one Redis read, or "flagged" when Redis is away)."""
        return self._in_sync.is_set()

    def forget(self, operation_id: str) -> None:
        """The daemon has been told of this flag at a step boundary: a later step of the operation goes on until the
        flag is published again. An ask (breakpoint) flag stays: it asks at every boundary until the daemon clears it."""
        self._flagged.discard(operation_id)

    def wait_in_sync(self, timeout: float) -> bool:
        return self._in_sync.wait(timeout)

    def _run(self) -> None:
        while True:
            try:
                self._follow()
            except Exception as error:  # noqa: BLE001 - Redis restarts or is unreachable: read flags directly meanwhile
                log.debug("stop-flag subscription broken: %s", error)
            self._in_sync.clear()
            time.sleep(RETRY_SECONDS)

    def _follow(self) -> None:
        client = redis.Redis.from_url(self._url, socket_connect_timeout=2, health_check_interval=10, decode_responses=True)
        with client, client.pubsub() as subscription:
            subscription.subscribe(flags.CHANNEL)
            while (message := subscription.get_message(timeout=RETRY_SECONDS)) is None or message["type"] != "subscribe":
                pass
            keys = list(client.scan_iter(match=flags.PREFIX + "*", count=1000))
            reasons = [value for start in range(0, len(keys), 1000) for value in client.mget(keys[start : start + 1000])]
            found = {key.removeprefix(flags.PREFIX): reason for key, reason in zip(keys, reasons, strict=True)}
            self._flagged = {operation_id for operation_id, reason in found.items() if reason != flags.ASK_REASON}
            self._asking = {operation_id for operation_id, reason in found.items() if reason == flags.ASK_REASON}
            self._in_sync.set()
            while True:
                message = subscription.get_message(timeout=5.0)
                if message is not None and message["type"] == "message":
                    flagged, operation_id = flags.parse(message["data"])
                    if not flagged:
                        self._flagged.discard(operation_id)
                        self._asking.discard(operation_id)
                    elif flags.asks(message["data"]):
                        self._asking.add(operation_id)
                        self._flagged.discard(operation_id)
                    else:
                        self._flagged.add(operation_id)
                        self._asking.discard(operation_id)


_mirror = PerProcess(lambda: StopFlagMirror(get_settings().broker_url))


def stop_flags() -> StopFlagMirror:
    """This process's mirror of the stop flags (made on first use)."""
    return _mirror.get()
