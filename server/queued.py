"""Which steps wait on the broker: tells a step queued behind busy workers from a lost one.

Asked only for operations whose lease lapsed (see engine.py), so its cost,
a read of the queues' Redis lists, is paid rarely. A step whose message is
in a queue list waits for a worker: not lost. One whose message kombu holds
in its `unacked` hash was delivered to a worker that has stopped renewing
its lease: the worker was lost. Neither: the message itself was lost (Redis
restarted empty, or a publish that never happened).
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from pausable.headers import ATTEMPT_HEADER, OPERATION_HEADER, STEP_HEADER

log = logging.getLogger("pausable.server")
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
UNACKED = "unacked"
DEFAULT_QUEUE = "celery"


class Whereabouts(enum.Enum):
    QUEUED = "queued on the broker"
    DELIVERED = "worker lost"
    MISSING = "message lost"


Position = tuple[str, int, int]


def position_of(envelope: bytes | str) -> Position | None:
    """(operation, step, attempt) in a kombu Redis envelope, or None for a message that is not a pausable step."""
    try:
        headers = json.loads(envelope).get("headers") or {}
        operation_id = headers.get(OPERATION_HEADER)
        if operation_id is None:
            return None
        return str(operation_id), int(headers.get(STEP_HEADER, -1)), int(headers.get(ATTEMPT_HEADER, 1))
    except (ValueError, TypeError, AttributeError):
        return None


class BrokerProbe:
    def __init__(self, broker_url: str) -> None:
        self.redis = aioredis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)

    async def whereabouts(self, queues: Iterable[str]) -> dict[Position, Whereabouts]:
        """Every pausable step message on the broker: queued (in a queue list) or delivered (unacked)."""
        found: dict[Position, Whereabouts] = {}
        for envelope in (await self.redis.hvals(UNACKED)) or ():
            position = _unacked_position(envelope)
            if position is not None:
                found[position] = Whereabouts.DELIVERED
        for queue in {DEFAULT_QUEUE, *queues}:
            for key in (queue, *(f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)):
                for envelope in await self.redis.lrange(key, 0, -1):
                    position = position_of(envelope)
                    if position is not None:
                        found[position] = Whereabouts.QUEUED
        return found

    async def close(self) -> None:
        await self.redis.aclose()


def _unacked_position(entry: Any) -> Position | None:
    """kombu keeps `[message, exchange, routing_key]` as JSON in the unacked hash."""
    try:
        message = json.loads(entry)
        return position_of(json.dumps(message[0])) if isinstance(message, list) and message else None
    except (ValueError, TypeError):
        return None
