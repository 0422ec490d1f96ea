"""The daemon's side of the stop flags (see pausable/flags.py): set on Pause/Cancel, cleared on Resume and at the end."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from pausable import flags
from pausable.server.states import ACTIVE, State

log = logging.getLogger("pausable.server")
STOP_STATES = {State.PAUSE_REQUESTED: "pause", State.CANCEL_REQUESTED: "cancel"}
MAX_CONNECTIONS = 16
POOL_WAIT_SECONDS = 10.0
# Delete the flag and, if there was one, tell the workers: one round trip (a DEL, then a PUBLISH, took two on every
# Resume). redis-py sends it by its SHA and loads it again after a Redis restart (NOSCRIPT).
CLEAR = "if redis.call('DEL', KEYS[1]) == 1 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end"


class StopFlags:
    def __init__(self, broker_url: str) -> None:
        # A blocking pool: a burst of commands (300 Pause calls at once) waits for a connection. redis-py's default
        # asyncio pool refuses the 101st concurrent command ("Too many connections"), and each refused flag
        # delayed its stop by a whole step.
        pool = aioredis.BlockingConnectionPool.from_url(
            broker_url,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        self.redis = aioredis.Redis.from_pool(pool)
        self._clear = self.redis.register_script(CLEAR)

    async def follow(self, operation_id: str, state: State, attempt: int = 1, ask: bool = False) -> None:
        """Make the flag match `state`. Best effort: the store decides, the flag only saves workers a call.

        An active operation whose step was dispatched again (attempt > 1) stays
        flagged too: a slow earlier attempt then checkpoints synchronously, is
        told STOP, and its chain ends at that step instead of running on.
        `ask`: a breakpoint is near (see Store._asks): the flag asks workers to check in at every boundary (not a
        stop of the running step, see pausable/flags.py).
        """
        reason = STOP_STATES.get(state) or (
            flags.ASK_REASON if ask and state in ACTIVE else "retry" if attempt > 1 and state in ACTIVE else None
        )
        try:
            if reason is not None:
                message = flags.ask_message(operation_id) if reason == flags.ASK_REASON else flags.set_message(operation_id)
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(flags.key(operation_id), reason, ex=flags.TTL_SECONDS)
                    pipe.publish(flags.CHANNEL, message)
                    await pipe.execute()
            else:
                await self._clear(keys=[flags.key(operation_id)], args=[flags.CHANNEL, flags.clear_message(operation_id)])
        except Exception as error:  # noqa: BLE001 - the broker may be down; stops then take effect a step later
            log.warning("could not update the stop flag of %s: %s", operation_id, error)

    async def hold(self, operation_id: str) -> None:
        """Keep a stop flag up for an operation cancelled by force: a step of it still queued then drops itself as it
        starts, and a running one sees stop_requested(). It expires after a day (the operation has ended)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(flags.key(operation_id), "cancel", ex=flags.ENDED_TTL_SECONDS)
                pipe.publish(flags.CHANNEL, flags.set_message(operation_id))
                await pipe.execute()
        except Exception as error:  # noqa: BLE001 - best effort, as follow
            log.warning("could not set the stop flag of %s: %s", operation_id, error)

    async def close(self) -> None:
        await self.redis.aclose()
