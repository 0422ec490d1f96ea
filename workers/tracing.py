"""The worker's side of tracing: each Celery task runs inside a span, child of the daemon's call.

The dispatcher puts `traceparent` in every step's headers; Celery exposes
message headers as attributes of `task.request`. The span is started on
`task_prerun` and ended on `task_postrun`, which Celery sends around the whole
`__call__` (the step body and its Checkpoint call) in the same thread, so the
span is current while the Checkpoint call's metadata is built. The failure
report (task_failure → FailOperation) happens in between and is covered too.
A checkpoint reported later from a background thread finds the step's
context by (operation_id, step) (`pausable.tracing.remember_step`).

With tracing off, `instrument()` connects nothing: no cost per task.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.signals import task_postrun, task_prerun, worker_process_shutdown

from pausable import tracing
from pausable.headers import OPERATION_HEADER, STEP_HEADER

TRACE_HEADERS = ("traceparent", "tracestate")
SPAN_ATTRIBUTE = "_pausable_trace"  # on task.request: (span, context token) of the running task


def instrument() -> bool:
    """Connect the span signals when tracing is on (PAUSABLE_OTEL / PAUSABLE_OTEL_FILE / OTLP)."""
    if not tracing.enabled():
        return False
    task_prerun.connect(_start, weak=False)
    task_postrun.connect(_end, weak=False)
    worker_process_shutdown.connect(_flush, weak=False)
    return True


def _start(task: Task | None = None, task_id: str | None = None, **_: Any) -> None:
    if task is None or not tracing.configure("pausable-worker"):  # the provider is made in the forked child
        return
    from opentelemetry import context, trace

    request = task.request
    carrier = {name: value for name in TRACE_HEADERS if isinstance(value := getattr(request, name, None), str)}
    attributes: dict[str, Any] = {"celery.task_name": task.name, "celery.task_id": task_id or ""}
    operation_id = getattr(request, OPERATION_HEADER, None)
    if operation_id is not None:
        attributes["pausable.operation_id"] = operation_id
        attributes["pausable.step"] = int(getattr(request, STEP_HEADER))
    span = tracing.tracer().start_span(
        f"run/{task.name}", context=tracing.extract(carrier), kind=trace.SpanKind.CONSUMER, attributes=attributes
    )
    token = context.attach(trace.set_span_in_context(span))
    setattr(request, SPAN_ATTRIBUTE, (span, token))
    if operation_id is not None:
        tracing.remember_step(operation_id, attributes["pausable.step"])  # for a checkpoint sent in the background


def _end(task: Task | None = None, retval: Any = None, state: str | None = None, **_: Any) -> None:
    started = getattr(task.request, SPAN_ATTRIBUTE, None) if task is not None else None
    if started is None:
        return
    from opentelemetry import context, trace

    span, token = started
    setattr(task.request, SPAN_ATTRIBUTE, None)
    span.set_attribute("celery.state", state or "")
    if state == "FAILURE":
        if isinstance(retval, BaseException):
            span.record_exception(retval)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(retval).__name__))
    context.detach(token)
    span.end()


def _flush(**_: Any) -> None:
    tracing.flush()
