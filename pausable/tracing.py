"""OpenTelemetry tracing, carried client → daemon → Celery step → Checkpoint (the optional `otel` extra).

Everything here is a no-op unless OpenTelemetry is installed (`pip install
'pausable[otel]'`). The daemon and the workers then record spans only when
tracing is switched on: `PAUSABLE_OTEL=1`, or an exporter setting
(`PAUSABLE_OTEL_FILE=spans.jsonl`, or OpenTelemetry's own
`OTEL_EXPORTER_OTLP_ENDPOINT` with `opentelemetry-exporter-otlp` installed);
`PAUSABLE_OTEL=0` keeps it off whatever else is set.

The Python SDK needs no switch: when the application has tracing set up, its
calls carry the current trace (W3C `traceparent` in the gRPC metadata) and
make CLIENT spans; without an active span nothing is added.

The context travels as:
  SDK metadata → daemon server span (pausable.server.tracing) → `traceparent`
  in each step's Celery headers (`headers()`, used by the dispatcher) → the
  worker's step span (pausable.workers.tracing) → the Checkpoint call's
  metadata (`traced_channel`) → the daemon's Checkpoint span.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # the otel extra is not installed: every hook below does nothing
    otel_context = propagate = trace = None  # type: ignore[assignment]

log = logging.getLogger("pausable.tracing")

TRACER_NAME = "pausable"
OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
OFF = frozenset({"0", "false", "no", "off"})

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


def tracer() -> Any:
    """pausable's tracer from the global provider (a no-op tracer when none is set)."""
    return trace.get_tracer(TRACER_NAME)


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
            provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
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
    interleaving. The descriptor is reopened when the pid changes (fork).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._pid = -1
        self._closed = False

    def _descriptor(self) -> int:
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

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
        if self._pid == os.getpid() and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, set)) else str(value)


# -- propagation ------------------------------------------------------------------------


def headers() -> dict[str, str]:
    """The current trace context as Celery message headers ({} when tracing is off)."""
    if not _active:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


# Step contexts by (operation_id, step), for calls about a step made from another thread
# (a worker reports checkpoints in the background once the chain has moved on).
_steps: OrderedDict[tuple[str, int], Any] = OrderedDict()
_steps_lock = threading.Lock()
REMEMBERED_STEPS = 4096


def remember_step(operation_id: str, step: int) -> None:
    """Keep the current context (the running step's span) for later calls naming this step."""
    with _steps_lock:
        _steps[(operation_id, step)] = otel_context.get_current()
        _steps.move_to_end((operation_id, step))
        while len(_steps) > REMEMBERED_STEPS:
            _steps.popitem(last=False)


def _step_context(request: Any) -> Any:
    """The remembered context of the step a worker request names (CheckpointRequest, ReportProgressRequest…), or None."""
    operation_id, step = getattr(request, "operation_id", None), getattr(request, "step", None)
    if not isinstance(operation_id, str) or not isinstance(step, int):
        return None
    with _steps_lock:
        return _steps.get((operation_id, step))


def extract(carrier: dict[str, Any]) -> Any:
    """The context whose parent is the span named in `carrier` (W3C traceparent/tracestate)."""
    return propagate.extract(carrier)


def _outgoing(method: str, spans: bool, provider: Any = None, request: Any = None) -> tuple[Any, list[tuple[str, str]]]:
    """(span to end when the call is done or None, metadata to add) for one outgoing call.

    With `spans`, a CLIENT span child of the current one (from `provider`, or
    the global one); a no-op tracer just hands back the current span, so the
    caller's trace still travels. Without `spans` and with no span current
    (a worker's background sender thread), the step that `request` names
    gives the context.
    """
    span = None
    context = None
    if not spans and not trace.get_current_span().get_span_context().is_valid:
        context = _step_context(request)
    if spans:
        source = provider.get_tracer(TRACER_NAME) if provider is not None else tracer()
        span = source.start_span(method.lstrip("/"), kind=trace.SpanKind.CLIENT, attributes=_rpc_attributes(method))
        if span.is_recording():
            context = trace.set_span_in_context(span)
        else:
            span = None
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return span, list(carrier.items())


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def end_rpc_span(span: Any, code: grpc.StatusCode | None, *, server: bool = False) -> None:
    """Record the status code and end the span; client spans count every non-OK code as an error,
    server spans only the codes that mean the server failed (semantic conventions)."""
    if code is not None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK and (not server or code in SERVER_ERRORS):
            span.set_status(trace.Status(trace.StatusCode.ERROR, code.name))
    span.end()


SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


# -- client interceptors ----------------------------------------------------------------


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


class _CallDetails(
    namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class ClientTracing(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Sync channels: add the current trace to every call's metadata; with `spans`, make a CLIENT span.

    `tracer_provider`: where CLIENT spans are recorded (default: the global provider).
    """

    def __init__(self, *, spans: bool = True, tracer_provider: Any = None) -> None:
        self.spans = spans
        self.provider = tracer_provider

    def _intercept(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        method = _method_name(details.method)
        span, extra = _outgoing(method, self.spans, self.provider, request)
        if not extra:
            return continuation(details, request)
        metadata = [*(details.metadata or ()), *extra]
        details = _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            getattr(details, "compression", None),
        )
        call = continuation(details, request)
        if span is not None:
            call.add_done_callback(lambda done: end_rpc_span(span, _code(done)))
        return call

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return self._intercept(continuation, client_call_details, request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return self._intercept(continuation, client_call_details, request)


def _code(call: Any) -> grpc.StatusCode | None:
    try:
        return call.code()
    except Exception:  # noqa: BLE001 - a call that never started has no code
        return None


class AioClientTracing(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """The grpc.aio twin of ClientTracing (it runs in a task that copied the caller's context)."""

    def __init__(self, *, spans: bool = True, tracer_provider: Any = None) -> None:
        self.spans = spans
        self.provider = tracer_provider

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        span, extra = _outgoing(_method_name(client_call_details.method), self.spans, self.provider)
        if not extra:
            return await continuation(client_call_details, request)
        call = await continuation(_with_metadata(client_call_details, extra), request)
        if span is None:
            return call
        try:
            await call  # the caller awaits the same call and gets the same reply or error
        except grpc.RpcError as error:
            end_rpc_span(span, error.code())
        except BaseException:
            span.end()
            raise
        else:
            end_rpc_span(span, grpc.StatusCode.OK)
        return call

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        span, extra = _outgoing(_method_name(client_call_details.method), self.spans, self.provider)
        if not extra:
            return await continuation(client_call_details, request)
        call = await continuation(_with_metadata(client_call_details, extra), request)
        if span is not None:
            call.add_done_callback(lambda done: span.end())  # aio codes are awaitables: not readable here
        return call


def _with_metadata(details: Any, extra: Iterable[tuple[str, str]]) -> Any:
    return details._replace(metadata=grpc.aio.Metadata(*(details.metadata or ()), *extra))


def client_interceptors() -> list[ClientTracing]:
    """For the sync SDK: [] without OpenTelemetry or with PAUSABLE_OTEL=0."""
    return [ClientTracing()] if _sdk_tracing() else []


def aio_client_interceptors() -> list[AioClientTracing]:
    """For the AsyncClient: [] without OpenTelemetry or with PAUSABLE_OTEL=0."""
    return [AioClientTracing()] if _sdk_tracing() else []


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


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """A worker's channel to the daemon: carries the running step's trace when tracing is on.

    Only metadata, no CLIENT span: the daemon's span is the child of the step span.
    """
    return grpc.intercept_channel(channel, ClientTracing(spans=False)) if enabled() else channel
