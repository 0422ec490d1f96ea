"""OpenTelemetry tracing, carried client → daemon → Celery step → Checkpoint (the optional `otel` extra).

The spans and their propagation are OpenTelemetry's own instrumentations:
opentelemetry-instrumentation-grpc makes the CLIENT spans of the SDK and the
workers and the daemon's SERVER spans, opentelemetry-instrumentation-celery
a CONSUMER span per step (`run/<task name>`). This module decides when they
are on and adds only what is pausable's own:

- the switch: the daemon and the workers record spans when `PAUSABLE_OTEL=1`
  or an exporter is set (`PAUSABLE_OTEL_FILE=spans.jsonl`, or
  `OTEL_EXPORTER_OTLP_ENDPOINT` with `opentelemetry-exporter-otlp`);
  `PAUSABLE_OTEL=0` keeps it off whatever else is set. The Python SDK needs
  no switch: it traces when the application installed a tracer provider.
- the JSON-lines file exporter (`PAUSABLE_OTEL_FILE`);
- `headers()`: the daemon publishes the chains itself (straight to Redis, see
  pausable.server.dispatch), not through an instrumented `apply_async`, so it
  puts the calling RPC's span in each step's Celery headers: that span is
  the parent of every step it dispatched;
- the step attributes (`pausable.operation_id`, `pausable.step`) and the
  link from a step to its Checkpoint call, also when the worker reports it
  later from its background thread (`step_context`).

Everything here is a no-op unless OpenTelemetry is installed; the
instrumentation packages are imported only once tracing is on.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc

from pausable.headers import OPERATION_HEADER, STEP_HEADER
from pausable.per_process import PerProcess

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # the otel extra is not installed: every hook below does nothing
    otel_context = propagate = trace = None  # type: ignore[assignment]

log = logging.getLogger("pausable.tracing")

OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
OFF = frozenset({"0", "false", "no", "off"})
UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")

_lock = threading.Lock()
_provider: Any = None  # the SDK TracerProvider this process records with, once configured
_active = False  # True once configure() succeeded: the daemon adds `traceparent` to Celery headers
_no_sdk = False  # tracing was asked for without opentelemetry-sdk: warned once, then off


def available() -> bool:
    """The OpenTelemetry API can be imported (the SDK is needed only to record spans)."""
    return trace is not None


def enabled() -> bool:
    """Should this daemon or worker record spans? (PAUSABLE_OTEL, PAUSABLE_OTEL_FILE, OTLP endpoint)."""
    if trace is None:
        return False
    from pausable.config import get_settings

    settings = get_settings()
    switch = settings.otel.strip().lower()
    if switch:
        return switch not in OFF
    return bool(settings.otel_file) or any(os.environ.get(name) for name in OTLP_ENDPOINTS)


def active() -> bool:
    return _active


def configure(service: str) -> bool:
    """Make this process record spans, once: True when tracing is on and the SDK is installed.

    Reuses a TracerProvider the application already installed; otherwise sets
    one named `service` (or OTEL_SERVICE_NAME). Adds the JSON-lines file
    exporter when PAUSABLE_OTEL_FILE is set and OTLP when its endpoint is.
    Safe to call after fork: the file exporter reopens per process.
    """
    global _provider, _active, _no_sdk
    if _provider is not None:  # the fast path: once per task in a worker
        return True
    if _no_sdk or not enabled():
        return False
    with _lock:
        if _provider is not None:
            return True
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            log.warning("tracing is on but opentelemetry-sdk is not installed: pip install 'pausable[otel]'")
            _no_sdk = True
            return False
        from pausable.config import get_settings

        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service}))
            trace.set_tracer_provider(provider)
        path = get_settings().otel_file
        if path:
            # JsonLinesExporter is a SpanExporter by duck typing (the SDK is imported only when tracing is on).
            provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))  # type: ignore[arg-type]
        otlp = _otlp_exporter()
        if otlp is not None:
            provider.add_span_processor(BatchSpanProcessor(otlp))
        _provider, _active = provider, True
        log.info("tracing on as %s%s%s", service, f", spans to {path}" if path else "", ", OTLP export" if otlp else "")
        return True


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered (a Celery child may exit without running atexit)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def _otlp_exporter() -> Any:
    if not any(os.environ.get(name) for name in OTLP_ENDPOINTS):
        return None
    try:
        if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp is not installed; not exporting OTLP")
        return None
    return OTLPSpanExporter()


# -- the JSON-lines exporter ----------------------------------------------------------


def span_record(span: Any) -> dict[str, Any]:
    """One finished span as a flat JSON object: ids in W3C hex, parent id or None."""
    context = span.get_span_context()
    return {
        "name": span.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent is not None else None,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start_unix_nano": span.start_time,
        "end_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "pid": os.getpid(),
    }


class JsonLinesExporter:
    """Appends each finished span as one JSON line to `path` (for tests and local use).

    Each line goes out in a single write() on an O_APPEND descriptor, so the
    daemon, a worker and its forked children can share one file without
    interleaving. Each process opens its own descriptor (pausable/per_process.py).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = PerProcess(lambda: os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        self._closed = False

    def _descriptor(self) -> int:
        return self._fd.get()

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if self._closed:
            return SpanExportResult.FAILURE
        try:
            fd = self._descriptor()
            for span in spans:
                os.write(fd, (json.dumps(span_record(span), default=_jsonable) + "\n").encode())
        except OSError:
            log.exception("cannot write spans to %s", self.path)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._closed = True
        fd = self._fd.peek()
        if fd is not None:
            os.close(fd)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, set)) else str(value)


# -- gRPC: OpenTelemetry's interceptors, switched on here --------------------------------


def _unary(call_details: Any) -> bool:
    """Trace unary calls only, health and reflection aside (the filter of every interceptor below).

    A Watch lasts as long as its watcher and would hold one span open for
    hours; the sync interceptor would also leave the stream's span current
    in the caller's thread between two events. Streaming is read from the
    method's descriptor; a method this process has no descriptor for is not traced.
    """
    method = getattr(call_details, "method", None) or call_details.full_method
    service, _, name = (method.decode() if isinstance(method, bytes) else method).lstrip("/").partition("/")
    if service.startswith(UNTRACED_SERVICES):
        return False
    from google.protobuf import descriptor_pool

    try:
        found = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return False
    return not (found.client_streaming or found.server_streaming)


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The daemon's: a SERVER span per unary call, child of the caller's `traceparent`; [] when tracing is off.

    The span is current while the servicer runs, so `headers()` puts it in
    every step the call dispatches (StartOperation, Resume…).
    """
    if not configure("pausable-daemon"):
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=_unary)]


def client_channel(channel: grpc.Channel, *, tracer_provider: Any = None) -> grpc.Channel:
    """The sync SDK's channel: a CLIENT span per unary call, carried in `traceparent`; `channel` itself when not tracing.

    `tracer_provider`: where the CLIENT spans are recorded (default: the global provider).
    """
    if not _sdk_tracing():
        return channel
    return _intercepted(channel, tracer_provider)


def aio_client_interceptors() -> list[Any]:
    """The AsyncClient's interceptors: [] without OpenTelemetry or with PAUSABLE_OTEL=0."""
    if not _sdk_tracing():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors as interceptors

    return list(interceptors(filter_=_unary))


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """A worker's channel to the daemon: each call (Checkpoint, FailOperation…) is a CLIENT span, child of the step's span."""
    return _intercepted(channel, None) if enabled() else channel


def _intercepted(channel: grpc.Channel, tracer_provider: Any) -> grpc.Channel:
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    return intercept_channel(channel, client_interceptor(tracer_provider, filter_=_unary))


def _sdk_tracing() -> bool:
    """PAUSABLE_OTEL=1/0 decides; unset, the SDK traces when the application installed a tracer provider.

    Checked when a client is made, so a client made before the application
    sets up OpenTelemetry does not trace unless PAUSABLE_OTEL=1.
    """
    if trace is None:
        return False
    switch = os.environ.get("PAUSABLE_OTEL", "").strip().lower()
    if switch:
        return switch not in OFF
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


# -- Celery: the daemon's side (headers) and the worker's (OpenTelemetry's CeleryInstrumentor) --


def headers() -> dict[str, str]:
    """The current trace context as Celery message headers ({} when tracing is off)."""
    if not _active:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def instrument_worker() -> bool:
    """A CONSUMER span per task (`run/<task name>`), child of the span in its headers; False when tracing is off.

    The span covers the whole task call: the step body, its Checkpoint call
    and the failure report. The instrumentor's publishing hooks are removed:
    the daemon names each step's parent in its headers (the RPC that
    dispatched it), and Celery forwarding the chain from the worker would
    otherwise overwrite that with an `apply_async` span under the previous step.
    """
    if not enabled():
        return False
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    signals.task_prerun.connect(_configure_worker, weak=False)  # before the instrumentor's: the provider is made in the child
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument()
    signals.before_task_publish.disconnect(instrumentor._trace_before_publish)
    signals.after_task_publish.disconnect(instrumentor._trace_after_publish)
    signals.task_prerun.connect(_label_step, weak=False)  # after it: its span is current
    signals.worker_process_shutdown.connect(_flush, weak=False)
    return True


def _configure_worker(**_: Any) -> None:
    configure("pausable-worker")


def _label_step(task: Any = None, **_: Any) -> None:
    """Name the step the task runs on its span, and remember it for a checkpoint reported in the background."""
    operation_id = getattr(task.request, OPERATION_HEADER, None) if task is not None else None
    if operation_id is None:
        return
    step = int(getattr(task.request, STEP_HEADER))
    trace.get_current_span().set_attributes({"pausable.operation_id": operation_id, "pausable.step": step})
    with _steps_lock:
        _steps[(operation_id, step)] = otel_context.get_current()
        _steps.move_to_end((operation_id, step))
        while len(_steps) > REMEMBERED_STEPS:
            _steps.popitem(last=False)


def _flush(**_: Any) -> None:
    flush()


# Step contexts by (operation_id, step), for calls about a step made from another thread
# (a worker reports checkpoints in the background once the chain has moved on).
_steps: OrderedDict[tuple[str, int], Any] = OrderedDict()
_steps_lock = threading.Lock()
REMEMBERED_STEPS = 4096


@contextmanager
def step_context(operation_id: str, step: int) -> Iterator[None]:
    """Make the step's span current in this thread (the reporter's), so its Checkpoint call is that span's child."""
    with _steps_lock:
        found = _steps.get((operation_id, step))
    token = otel_context.attach(found) if found is not None else None
    try:
        yield
    finally:
        if token is not None:
            otel_context.detach(token)
