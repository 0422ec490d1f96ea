"""Wiring of metrics, operation logs and the health monitor into the daemon (used by server/app.py).

    obs = Observability(settings)
    store = await Store.open(..., on_commit=obs.on_commit(hub.publish))
    registrar = Registrar(server, [..., obs.rpc_observer])   # handlers.py
    ...
    daemon.background.extend(obs.start(daemon, SERVICE_NAMES))   # once the server is up

Everything it starts is a background task of the daemon, so `Daemon.stop`
(which cancels them) also stops the monitor and the metrics endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pausable.config import Settings
from pausable.server.domain import Event
from pausable.server.healthcheck import HealthMonitor, Probe, StoreProbe, broker_probe
from pausable.server.metrics import DaemonMetrics
from pausable.server.rpcobserver import RpcObserver
from pausable.server.states import Decision, EventType

if TYPE_CHECKING:
    from pausable.server.app import Daemon

log = logging.getLogger("pausable.server")
events_log = logging.getLogger("pausable.operations")
# At DEBUG: CREATED (STARTED follows in the same transaction), and the ones of every step.
QUIET_EVENTS = frozenset({EventType.CREATED, EventType.PROGRESS, EventType.STEP_COMPLETED})


def log_events(events: list[Event]) -> None:
    """One INFO line per lifecycle event this daemon commits (QUIET_EVENTS at DEBUG)."""
    for event in events:
        level = logging.DEBUG if event.type in QUIET_EVENTS else logging.INFO
        if events_log.isEnabledFor(level):
            events_log.log(
                level,
                "%s: %s",
                event.type,
                event.message,
                extra={"operation_id": event.operation_id, "seq": event.seq, "state": event.snapshot["state"]},
            )


class Observability:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = DaemonMetrics() if settings.metrics_port else None
        self.rpc_observer = RpcObserver(self.metrics)
        self.monitor: HealthMonitor | None = None
        self.metrics_port: int | None = None

    def checkpoint_decided(self, decision: Decision) -> None:
        """One worker report recorded or answered (Checkpoint or one step of ReportSteps), by the engine's decision."""
        if self.metrics is not None:
            self.metrics.observe_checkpoint(decision.value)

    def on_commit(self, publish: Callable[[list[Event]], None]) -> Callable[[list[Event]], None]:
        """`publish` first (the watchers), then metrics and the operation log; neither may fail a committed change."""
        metrics = self.metrics

        def committed(events: list[Event]) -> None:
            publish(events)
            try:
                if metrics is not None:
                    metrics.observe_events(events)
                log_events(events)
            except Exception:
                log.exception("observing committed events failed")

        return committed

    def start(self, daemon: Daemon, services: Iterable[str]) -> list[asyncio.Task[None]]:
        """Start the health monitor (for "" and `services`) and the metrics endpoint; returns their tasks (cancelled on stop)."""
        settings = self.settings
        timeout = settings.health_timeout_seconds
        probes: dict[str, Probe] = {
            "store": StoreProbe(daemon.store.engine.url),
            "broker": broker_probe(settings.broker_url, lambda: daemon.engine.dispatcher.app, timeout),
        }
        self.monitor = HealthMonitor(
            daemon.health, (*services, ""), probes, interval=settings.health_interval_seconds, timeout=timeout
        )
        tasks = [asyncio.create_task(self.monitor.run(), name="pausable-health")]
        if self.metrics is not None:
            monitor = self.monitor
            self.metrics.attach(daemon.store, daemon.hub, lambda: dict(monitor.up))
            host = settings.listen.rsplit(":", 1)[0].strip("[]") or "0.0.0.0"
            if settings.auth_enabled:
                host = "127.0.0.1"  # the endpoint has no authentication: with auth on it serves loopback only
            self.metrics_port = self.metrics.serve(host, settings.metrics_port)
            log.info("metrics on http://%s:%d/metrics", host, self.metrics_port)
            tasks.append(asyncio.create_task(self._close_metrics_on_cancel(), name="pausable-metrics"))
        return tasks

    async def _close_metrics_on_cancel(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            if self.metrics is not None:
                await asyncio.to_thread(self.metrics.close)
