"""The broker's Redis, for bench tasks that record in it when they ended: one client per worker process."""

from __future__ import annotations

import os

import redis

_clients: dict[int, redis.Redis] = {}


def broker() -> redis.Redis:
    """This process's client (prefork children fork after import: each makes its own)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(os.environ["PAUSABLE_BROKER_URL"])
    return _clients[pid]
