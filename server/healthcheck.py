"""The health service follows the store and the broker: NOT_SERVING while either is unreachable.

A background task on the daemon's loop probes both every `interval` seconds,
each probe bounded by `timeout`. A dependency counts as down after `failures`
failed probes in a row (one slow probe is not an outage) and as up again
after one good probe; then "" and every service name flip together.

The store probe runs `SELECT 1` on a connection of its own, not one from the
store's pool: a pool busy with checkpoints would make the probe wait for a
connection, and a daemon under load is not an unreachable store. The broker probe is a Redis PING with short socket timeouts and no
client-side retries (kombu's connection in a thread for other transports).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from grpc_health.v1 import health, health_pb2
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

# grpc-stubs types grpc_health.v1.health without its aio module, the one the daemon serves with.
HealthServicer: Any = health.aio.HealthServicer  # type: ignore[attr-defined]

log = logging.getLogger("pausable.server.health")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Probe(Protocol):
    """Raises when the dependency cannot be reached."""

    async def __call__(self) -> None: ...

    async def close(self) -> None: ...


class StoreProbe:
    """A fresh connection per probe (NullPool): a probe cancelled by its timeout leaves no pool state behind."""

    def __init__(self, url: URL | str) -> None:
        self.engine: AsyncEngine = create_async_engine(url, poolclass=NullPool)

    async def __call__(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


class RedisProbe:
    def __init__(self, url: str, timeout: float) -> None:
        import redis.asyncio as redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0
        )

    async def __call__(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


class KombuProbe:
    """Any Celery transport: connect with kombu in a thread; at most one probe thread at a time."""

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self._running: asyncio.Future[None] | None = None

    def _connect(self) -> None:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=self.timeout)

    async def __call__(self) -> None:
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(self._connect))
        await asyncio.shield(self._running)

    async def close(self) -> None:
        pass


def broker_probe(broker_url: str, app: Callable[[], Any], timeout: float) -> RedisProbe | KombuProbe:
    """The first broker of a Celery URL list ("a;b" means failover) decides the kind of probe.

    `app` gives the Celery app, asked for only by a non-Redis broker's probe (a Redis probe needs no celery import).
    """
    first = broker_url.split(";")[0].strip()
    if first.startswith(REDIS_SCHEMES):
        return RedisProbe(first, timeout)
    return KombuProbe(app(), timeout)


class HealthMonitor:
    def __init__(
        self,
        servicer: Any,
        services: Iterable[str],
        probes: dict[str, Probe],
        *,
        interval: float = 1.0,
        timeout: float = 1.0,
        failures: int = 2,
    ) -> None:
        self.servicer = servicer
        self.services = tuple(services)
        self.probes = probes
        self.interval = interval
        self.timeout = timeout
        self.failures = max(1, failures)
        self.up: dict[str, bool] = {name: True for name in probes}
        self.serving = True
        self._failed = {name: 0 for name in probes}

    async def _probe(self, name: str) -> BaseException | None:
        try:
            await asyncio.wait_for(self.probes[name](), self.timeout)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - any failure means unreachable
            return error
        return None

    async def check(self) -> bool:
        """Probe every dependency once, update the health service when serving changes; returns serving."""
        names = list(self.probes)
        errors = await asyncio.gather(*(self._probe(name) for name in names))
        for name, error in zip(names, errors, strict=True):
            if error is None:
                self._failed[name] = 0
                if not self.up[name]:
                    log.info("the %s is reachable again", name)
                self.up[name] = True
                continue
            self._failed[name] += 1
            if self.up[name] and self._failed[name] >= self.failures:
                self.up[name] = False
                log.warning("the %s is unreachable: %s", name, f"{type(error).__name__}: {error}".rstrip(": "))
        serving = all(self.up.values())
        if serving != self.serving:
            self.serving = serving
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for service in self.services:
                await self.servicer.set(service, status)
            log.log(logging.INFO if serving else logging.WARNING, "health: %s", "SERVING" if serving else "NOT_SERVING")
        return serving

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.check()
                except Exception:
                    log.exception("health check failed")
                await asyncio.sleep(self.interval)
        finally:
            for probe in self.probes.values():
                try:
                    await probe.close()
                except Exception:
                    log.debug("closing a probe failed", exc_info=True)
