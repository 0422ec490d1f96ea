"""The daemon's side of tracing: a SERVER span around each unary call, child of the caller's trace.

The span is current while the servicer runs, so the dispatcher's
`pausable.tracing.headers()` puts it in every step's Celery headers and the
steps of an operation join the trace of the StartOperation (or Resume) call.
Streaming calls (Watch) and health/reflection checks pass through untraced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from pausable import tracing

UNTRACED = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """[TracingInterceptor()] when tracing is on in this daemon, else [] (nothing in the call path)."""
    return [TracingInterceptor()] if tracing.configure("pausable-daemon") else []


class TracingInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(UNTRACED):
            return handler
        carrier = {item.key: item.value for item in handler_call_details.invocation_metadata or ()}
        return grpc.unary_unary_rpc_method_handler(
            _traced(method, carrier, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _traced(
    method: str, carrier: dict[str, Any], behavior: Callable[[Any, Any], Awaitable[Any]]
) -> Callable[[Any, Any], Awaitable[Any]]:
    service, _, name = method.lstrip("/").partition("/")

    async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
        with tracing.tracer().start_as_current_span(
            method.lstrip("/"),
            context=tracing.extract(carrier),
            kind=tracing.trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
            record_exception=False,
            set_status_on_exception=False,
            end_on_exit=False,
        ) as span:
            try:
                reply = await behavior(request, context)
            except BaseException:
                tracing.end_rpc_span(span, _code(context) or grpc.StatusCode.UNKNOWN, server=True)
                raise
            tracing.end_rpc_span(span, _code(context) or grpc.StatusCode.OK, server=True)
            return reply

    return traced


def _code(context: grpc.aio.ServicerContext) -> grpc.StatusCode | None:
    """The status the call ends with, when the servicer set one (abort or set_code)."""
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - not every grpc version implements code()
        return None
    if isinstance(code, int):  # some versions hand back the raw integer
        code = next((c for c in grpc.StatusCode if c.value[0] == code), None)
    return code
