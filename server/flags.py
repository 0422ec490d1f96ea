"""The daemon's side of the stop flags (see pausable/flags.py): set on Pause/Cancel, cleared on Resume and at the end."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from pausable import flags
from pausable.server.states import ACTIVE, State

log = logging.getLogger("pausable.server")
STOP_STATES = {State.PAUSE_REQUESTED: "pause", State.CANCEL_REQUESTED: "cancel"}
MAX_CONNECTIONS = 16
POOL_WAIT_SECONDS = 10.0
# Delete the flag and, if there was one, tell the workers: one round trip (a DEL, then a PUBLISH, took two on every
# Resume). redis-py sends it by its SHA and loads it again after a Redis restart (NOSCRIPT).
CLEAR = "if redis.call('DEL', KEYS[1]) == 1 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end"


Commands = list[tuple[str, tuple[Any, ...], dict[str, Any]]]  # pipeline methods and their arguments


class StopFlags:
    """The daemon's stop flags in Redis. Updates from concurrent calls go in one pipeline: redis-py's asyncio client
    cost 127 µs of the event loop per flag update sent on its own (py-spy, 64 synchronous Checkpoints on their way;
    every Pause, Resume and Cancel makes one too): batched, a synchronous Checkpoint took 520 µs of the loop instead
    of 662 µs (bench/paired_rates.py --measure checkpoint). One pipeline at a time, in the order the calls came: a
    later update of a flag is never overtaken by an earlier one."""

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
        self._clear_sha = self.redis.register_script(CLEAR).sha
        self._waiting: list[tuple[Commands, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

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
        if reason is not None:
            message = flags.ask_message(operation_id) if reason == flags.ASK_REASON else flags.set_message(operation_id)
            await self._send(operation_id, _raise(operation_id, reason, flags.TTL_SECONDS, message))
        else:
            clear = (self._clear_sha, 1, flags.key(operation_id), flags.CHANNEL, flags.clear_message(operation_id))
            await self._send(operation_id, [("evalsha", clear, {})])

    async def hold(self, operation_id: str) -> None:
        """Keep a stop flag up for an operation cancelled by force: a step of it still queued then drops itself as it
        starts, and a running one sees stop_requested(). It expires after a day (the operation has ended)."""
        await self._send(operation_id, _raise(operation_id, "cancel", flags.ENDED_TTL_SECONDS, flags.set_message(operation_id)))

    async def close(self) -> None:
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
        await self.redis.aclose()

    async def _send(self, operation_id: str, commands: Commands) -> None:
        """`commands` in the next pipeline; an error is logged (the broker may be down: stops then take effect a
        step later)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((commands, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_waiting(), name="pausable-stop-flags")
        try:
            await done
        except Exception as error:  # noqa: BLE001 - best effort
            log.warning("could not update the stop flag of %s: %s", operation_id, error)

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    errors = await self._pipeline([commands for commands, _done in batch])
                except Exception as failed:  # noqa: BLE001 - each caller logs it
                    errors = [failed] * len(batch)
                for (_commands, done), error in zip(batch, errors, strict=True):
                    if done.done():
                        continue
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)
        finally:
            self._sender = None

    async def _pipeline(self, batch: list[Commands]) -> list[Exception | None]:
        """Send the batch's commands in one round trip; each entry's first error, or None. When a clear is refused
        with NOSCRIPT (Redis restarted or flushed its scripts since the script was loaded), the script is loaded and
        the batch sent again from that entry on, so its later updates still come after it."""
        errors: list[Exception | None] = []
        for loaded in (False, True):
            async with self.redis.pipeline(transaction=False) as pipe:
                for commands in batch[len(errors) :]:
                    for name, args, options in commands:
                        getattr(pipe, name)(*args, **options)
                replies = iter(await pipe.execute(raise_on_error=False))
            for commands in batch[len(errors) :]:
                outcome = [next(replies) for _ in commands]
                error = next((reply for reply in outcome if isinstance(reply, Exception)), None)
                if isinstance(error, NoScriptError) and not loaded:
                    await self.redis.script_load(CLEAR)
                    break
                errors.append(error)
            else:
                break
        return errors


def _raise(operation_id: str, reason: str, ttl_seconds: int, message: str) -> Commands:
    return [("set", (flags.key(operation_id), reason), {"ex": ttl_seconds}), ("publish", (flags.CHANNEL, message), {})]
