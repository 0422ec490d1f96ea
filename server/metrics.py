"""The daemon's Prometheus metrics, served over HTTP on `metrics_port` (0, the default, serves none).

Everything lives in a registry of the daemon's own, so two daemons in one
process (tests) never collide. Counters and histograms are updated on the
event loop as things happen: RPCs by their handlers' wrapper (rpcobserver.py),
checkpoint decisions by the engine, pause latency and event counts
from the events this replica commits (the store's on_commit stream, after the
commit: nothing is added to the checkpoint transaction).

prometheus_client serves scrapes from a thread of its own. The gauges that
need the store (operations by state) or loop-owned objects (watchers) are
therefore computed by a coroutine on the daemon's loop, which the scrape
thread waits for with a timeout: the loop is never blocked, a scrape never
touches loop state, and an idle daemon runs no query when nobody scrapes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from pausable.server.domain import Event
from pausable.server.hub import EventHub
from pausable.server.models import OperationRow
from pausable.server.states import EventType, State
from pausable.server.store import Store

log = logging.getLogger("pausable.server.metrics")

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
PAUSE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
PENDING_PAUSES = 100_000  # pause requests remembered while waiting for their PAUSED event
SAMPLE_TIMEOUT = 2.0  # how long a scrape waits for the loop to count operations
SAMPLE_MAX_AGE = 1.0  # scrapes closer together than this share one count
STALE_AFTER = 10.0  # a count older than this (store unreachable) is not served


@dataclass
class Sample:
    """What the loop computed for one scrape."""

    operations: dict[str, int] | None  # None: the count failed
    watchers: int
    taken: float = field(default_factory=time.monotonic)


class LoopCollector(Collector):
    """Gauges computed on the daemon's event loop at scrape time: operations by state, watchers, dependencies."""

    def __init__(self, store: Store, hub: EventHub, dependencies: Callable[[], Mapping[str, bool]] | None) -> None:
        self.store = store
        self.hub = hub
        self.dependencies = dependencies
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._last: Sample | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._loop_thread = threading.get_ident()

    async def _sample(self) -> Sample:
        watchers = self.hub.watcher_count
        try:
            async with self.store.sessions() as session:
                rows = (await session.execute(select(OperationRow.state, func.count()).group_by(OperationRow.state))).all()
            operations: dict[str, int] | None = {str(state): int(count) for state, count in rows}
        except Exception as error:  # noqa: BLE001 - the store may be down; the health monitor says so
            log.debug("counting operations for /metrics failed: %s", error)
            operations = None
        return Sample(operations, watchers)

    def sample(self) -> Sample | None:
        """A recent sample: reuse one younger than SAMPLE_MAX_AGE, else ask the loop (never from the loop's own thread)."""
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.taken < SAMPLE_MAX_AGE:
                return last
            if self.loop is None or self.loop.is_closed() or threading.get_ident() == self._loop_thread:
                return last
            future = asyncio.run_coroutine_threadsafe(self._sample(), self.loop)
            try:
                fresh = future.result(SAMPLE_TIMEOUT)
            except Exception:  # noqa: BLE001 - timeout (a busy loop) or a closing loop: serve the last one
                future.cancel()
                return last
            if (
                fresh.operations is None
                and last is not None
                and last.operations is not None
                and fresh.taken - last.taken < STALE_AFTER
            ):
                fresh.operations = last.operations
            self._last = fresh
            return fresh

    def describe(self) -> Iterable[Metric]:
        # Without describe() the registry would call collect() at registration, on the loop's thread.
        return [*self._families(None)]

    def collect(self) -> Iterable[Metric]:
        return self._families(self.sample())

    def _families(self, sample: Sample | None) -> Iterable[Metric]:
        operations = GaugeMetricFamily(
            "pausable_operations", "Operations in the store by state (every replica's: one GROUP BY per scrape)", labels=["state"]
        )
        watchers = GaugeMetricFamily("pausable_watchers", "Watch and WatchEvents streams open on this daemon")
        dependencies = GaugeMetricFamily(
            "pausable_dependency_up",
            "1 while the health monitor reaches the dependency (store, broker), else 0",
            labels=["dependency"],
        )
        if sample is not None:
            if sample.operations is not None:
                for state in State:
                    operations.add_metric([str(state)], sample.operations.get(str(state), 0))
            watchers.add_metric([], sample.watchers)
        if self.dependencies is not None:
            for name, up in self.dependencies().items():
                dependencies.add_metric([name], 1.0 if up else 0.0)
        return [operations, watchers, dependencies]


class DaemonMetrics:
    """Counters and histograms of one daemon; `serve()` starts the HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.rpc = Histogram(
            "pausable_rpc_duration_seconds",
            "gRPC calls handled, by method and status code; streams count from start to end (_count is the call count)",
            ["service", "method", "code"],
            buckets=RPC_BUCKETS,
            registry=self.registry,
        )
        self.checkpoints = Counter(
            "pausable_checkpoints",
            "Worker reports recorded or answered, by decision (each step of a ReportSteps counts; rate() is checkpoints per second)",
            ["decision"],
            registry=self.registry,
        )
        self.events = Counter(
            "pausable_events", "Operation events committed by this daemon, by type", ["type"], registry=self.registry
        )
        self.steps_retried = Counter(
            "pausable_steps_retried",
            "Steps dispatched again after their lease lapsed, by reason (worker lost, message lost), on this daemon",
            ["reason"],
            registry=self.registry,
        )
        self.pause_latency = Histogram(
            "pausable_pause_latency_seconds",
            "From a pause request being recorded (PAUSE_REQUESTED) to the operation pausing (PAUSED), both on this daemon",
            buckets=PAUSE_BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.loop_collector: LoopCollector | None = None
        self._rpc_children: dict[tuple[str, grpc.StatusCode], Any] = {}
        self._event_children: dict[str, Any] = {}
        self._decision_children: dict[str, Any] = {}
        self._pause_requested: dict[str, float] = {}
        self._http: Any = None

    # -- updates, on the event loop -------------------------------------------

    def observe_rpc(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        child = self._rpc_children.get((method, code))
        if child is None:
            service, _, name = method.lstrip("/").rpartition("/")
            child = self._rpc_children[(method, code)] = self.rpc.labels(service, name, code.name)
        child.observe(seconds)

    def observe_checkpoint(self, decision: str, count: int = 1) -> None:
        child = self._decision_children.get(decision)
        if child is None:
            child = self._decision_children[decision] = self.checkpoints.labels(decision)
        child.inc(count)

    def observe_events(self, events: list[Event]) -> None:
        """Count the committed events; PAUSE_REQUESTED → PAUSED of one operation is one pause latency."""
        pending = self._pause_requested
        for event in events:
            child = self._event_children.get(event.type)
            if child is None:
                child = self._event_children[event.type] = self.events.labels(str(event.type))
            child.inc()
            if event.type == EventType.STEP_RETRIED:
                self.steps_retried.labels(event.message.rpartition(": ")[2]).inc()
            if event.type == EventType.PAUSE_REQUESTED:
                if len(pending) >= PENDING_PAUSES:
                    pending.pop(next(iter(pending)))
                pending[event.operation_id] = event.time
            elif event.operation_id in pending:
                if event.type == EventType.PAUSED:
                    self.pause_latency.observe(max(0.0, event.time - pending.pop(event.operation_id)))
                elif event.state is not State.PAUSE_REQUESTED:
                    pending.pop(event.operation_id)  # resumed or cancelled before the pause took effect

    # -- serving ----------------------------------------------------------------

    def attach(self, store: Store, hub: EventHub, dependencies: Callable[[], Mapping[str, bool]] | None = None) -> None:
        """Add the loop-computed gauges; call on the daemon's loop."""
        self.loop_collector = LoopCollector(store, hub, dependencies)
        self.loop_collector.bind(asyncio.get_running_loop())
        self.registry.register(self.loop_collector)

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (any path answers, /metrics by convention); returns the port."""
        try:
            self._http, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise SystemExit(f"cannot serve metrics on {host}:{port} ({error}); choose another PAUSABLE_METRICS_PORT") from error
        return int(self._http.server_address[1])

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
