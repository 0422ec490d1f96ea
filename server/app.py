"""The daemon: one grpc.aio server with OperationService, WorkerService, health and reflection."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.longrunning import operations_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from pausable.collector import settle_garbage_collector
from pausable.config import Settings
from pausable.server import healthcheck, limits, longrunning
from pausable.server.auth import Authenticator, AuthWrapper
from pausable.server.dispatch import Dispatcher
from pausable.server.engine import Engine, Timing
from pausable.server.flags import StopFlags
from pausable.server.handlers import Registrar
from pausable.server.hub import EventHub
from pausable.server.limits import DecodeGuard
from pausable.server.longrunning import LongRunningService
from pausable.server.observability import Observability
from pausable.server.operations import OperationService
from pausable.server.queued import BrokerProbe
from pausable.server.store import Store
from pausable.server.watching import Watching
from pausable.server.workers_api import WorkerService
from pausable.tracing import server_interceptors
from pausable.v1 import operation_pb2, operation_pb2_grpc, worker_pb2, worker_pb2_grpc

if TYPE_CHECKING:
    from pausable.server.gateway import Gateway
    from pausable.server.notify import PgListener

log = logging.getLogger("pausable.server")

SERVICE_NAMES = (
    operation_pb2.DESCRIPTOR.services_by_name["OperationService"].full_name,
    worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    longrunning.SERVICE_NAME,
)


@dataclass
class Daemon:
    server: grpc.aio.Server
    store: Store
    hub: EventHub
    engine: Engine
    health: Any  # grpc_health's aio HealthServicer (see healthcheck.HealthServicer)
    port: int
    background: list[asyncio.Task[None]] = field(default_factory=list)
    listener: PgListener | None = None
    observability: Observability | None = None
    gateway: Gateway | None = None

    async def stop(self, grace: float) -> None:
        """Stop taking calls, let calls in flight finish, end Watch streams (and the gateway's) with UNAVAILABLE."""
        await self.health.enter_graceful_shutdown()  # NOT_SERVING for good: the health monitor's updates are ignored
        stopping = [asyncio.create_task(self.server.stop(grace))]
        if self.gateway is not None:
            stopping.append(asyncio.create_task(self.gateway.stop()))
        self.hub.close_all()
        await asyncio.gather(*stopping)
        for task in self.background:
            task.cancel()
        if self.listener is not None:
            await self.listener.stop()
        await self.engine.close()
        await self.engine.flags.close()
        await self.store.close()
        self.engine.dispatcher.close()


async def purge_forever(store: Store, settings: Settings) -> None:
    """Retention: delete finished operations older than settings.retention_seconds, in small batches."""
    while True:
        await asyncio.sleep(settings.purge_interval_seconds)
        try:
            cutoff = datetime.now(UTC) - timedelta(seconds=settings.retention_seconds)
            purged = await store.purge(cutoff, settings.purge_batch)
            if purged:
                log.info("purged %d finished operations older than %s", purged, cutoff.isoformat())
        except Exception:
            log.exception("purge failed")


def reflection_on(settings: Settings) -> bool:
    """Server reflection: `on`, `off`, or `auto` (on only when no authentication mode is configured)."""
    return settings.reflection == "on" or (settings.reflection == "auto" and not settings.auth_enabled)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS when tls_cert and tls_key are set; with client_ca, every connection must present a client certificate signed by
    it (mutual TLS; gRPC cannot ask for an optional one), which names the caller unless it also sends a bearer token."""
    if not (settings.tls_cert or settings.tls_key):
        if settings.client_ca:
            raise SystemExit("--client-ca (mutual TLS) needs TLS: set --tls-cert and --tls-key too")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise SystemExit("TLS needs both --tls-cert and --tls-key (PAUSABLE_TLS_CERT, PAUSABLE_TLS_KEY)")
    chain = Path(settings.tls_cert).read_bytes()
    key = Path(settings.tls_key).read_bytes()
    root = Path(settings.client_ca).read_bytes() if settings.client_ca else None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=root, require_client_auth=root is not None)


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """The gRPC server's protection: streams per connection, message size, keepalive enforcement (see config.py)."""
    min_ping_ms = int(settings.min_ping_interval_seconds * 1000)
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        # Keepalive enforcement: a client may ping (also while it has no call open) at most every min_ping_ms;
        # more often, twice, and it is sent away with GOAWAY (too_many_pings).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.max_ping_strikes", 2),
        # The server's own pings find dead connections (and the Watch streams on them) within about a minute.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]


async def start(settings: Settings, listen: str | None = None) -> Daemon:
    limits.configure(limits.Limits.from_settings(settings))
    hub = EventHub(settings.watch_buffer)
    observability = Observability(settings)
    store = await Store.open(settings.database_url, on_commit=observability.on_commit(hub.publish), replica=settings.replica)
    store.require_step_tokens = settings.require_step_tokens
    listener = None
    if store.postgres:
        from pausable.server.notify import PgListener  # asyncpg: only for Postgres

        listener = PgListener(settings.database_url, store.replica, hub)
        await listener.start()
    timing = Timing(settings.step_lease_seconds, settings.outbox_grace_seconds)
    engine = Engine(
        store,
        Dispatcher(settings.broker_url),
        StopFlags(settings.broker_url),
        BrokerProbe(settings.broker_url),
        timing,
        on_decision=observability.checkpoint_decided,
    )
    watching = Watching(store, hub)
    authenticator = Authenticator(settings)
    server = grpc.aio.server(
        options=server_options(settings),
        interceptors=server_interceptors(),  # OpenTelemetry's, when tracing is on
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
    )
    # Every handler is wrapped when it is registered (handlers.py), outermost first: the decode guard, so a request
    # too deep to decode is INVALID_ARGUMENT before anything else runs; the access log and metrics (observability);
    # authentication innermost, so the access log sees the identity and every denial's code. Without an
    # authentication mode every caller is anonymous with every role (auth.PRINCIPAL's default): no wrapper, no cost.
    registrar = Registrar(
        server,
        [DecodeGuard(), observability.rpc_observer, *([AuthWrapper(authenticator)] if authenticator.enabled else [])],
    )
    operation_pb2_grpc.add_OperationServiceServicer_to_server(OperationService(engine, watching), registrar)
    operations_pb2_grpc.add_OperationsServicer_to_server(LongRunningService(engine, watching), registrar)
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(WorkerService(engine, settings.default_max_attempts), registrar)
    health_servicer = healthcheck.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    if reflection_on(settings):
        names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
        servicer = reflection.aio.ReflectionServicer(names)  # type: ignore[attr-defined]  # public: in its __all__
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, registrar)
    address = listen or settings.listen
    credentials = server_credentials(settings)
    port = server.add_secure_port(address, credentials) if credentials is not None else server.add_insecure_port(address)
    if port == 0:
        raise SystemExit(f"cannot listen on {address}: is another daemon running there?")
    await server.start()
    daemon = Daemon(server, store, hub, engine, health_servicer, port, listener=listener, observability=observability)
    if settings.http_port:  # before the health service says SERVING: whoever waits on it may use the gateway at once
        from pausable.server.gateway import Gateway  # aiohttp only with the gateway on: 9 MB of RSS, 80 ms to import

        daemon.gateway = Gateway(settings, registrar.handlers)
        host = address.rsplit(":", 1)[0].strip("[]")
        try:
            http_port = await daemon.gateway.start(host)
        except OSError as error:
            await server.stop(None)
            raise SystemExit(
                f"cannot serve HTTP on {host}:{settings.http_port} ({error.strerror}): choose another --http-port"
            ) from None
        log.info("HTTP gateway and web console on port %d", http_port)
    for name in (*SERVICE_NAMES, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("pausable daemon listening on port %d, store %s", port, store.engine.url.render_as_string(hide_password=True))
    daemon.background.extend(observability.start(daemon, SERVICE_NAMES))
    daemon.background.append(asyncio.create_task(engine.run_sweeps(), name="pausable-sweeps"))
    if settings.retention_seconds > 0:
        daemon.background.append(asyncio.create_task(purge_forever(store, settings), name="pausable-purge"))
    return daemon


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    daemon = await start(settings)
    settle_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"pausable daemon serving on {settings.listen.rsplit(':', 1)[0]}:{daemon.port}", flush=True)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down (grace %.1fs)", settings.grace_seconds)
    await daemon.stop(settings.grace_seconds)
