"""Every service's handlers, wrapped once when they are registered: the decode guard, the access log and metrics,
authentication, and serializers that pass `Encoded` replies through.

grpc.aio runs its server interceptors on every call: each is a coroutine
that asks the next one for the handler, so a call pays a few microseconds
per interceptor before its servicer runs, and a wrapper built per call more.
What pausable's wrappers do depends only on the method, so a `Registrar`
stands in for the server while protoc's `add_*Servicer_to_server` functions
(and grpc's health and reflection services) register, and hands the server
each handler already wrapped; the server then runs no interceptor of
pausable's (OpenTelemetry's, when tracing is on, stays one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc

from pausable.server.encoded import accepting_encoded


class HandlerWrapper:
    """Wraps a method's handler (its behavior, its (de)serializers) once, when it is registered."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler to serve `method` (`/package.Service/Method`) with (`handler` itself to leave it as it is)."""
        raise NotImplementedError


class Registrar:
    """Stands in for `server` in registration calls: each handler is wrapped by `wrappers`, the last innermost, and
    its response serializer accepts `Encoded` replies."""

    def __init__(self, server: grpc.aio.Server, wrappers: Sequence[HandlerWrapper]) -> None:
        self.server = server
        self.wrappers = list(wrappers)
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}  # by method, as registered: the HTTP gateway calls these

    def wrapped(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        for wrapper in reversed(self.wrappers):
            handler = wrapper.wrap(method, handler)
        return handler._replace(response_serializer=accepting_encoded(handler.response_serializer))  # type: ignore[attr-defined]

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers(tuple(_WrappedGeneric(handler, self) for handler in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: self.wrapped(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        self.handlers.update((f"/{service}/{name}", handler) for name, handler in wrapped.items())
        self.server.add_registered_method_handlers(service, wrapped)  # type: ignore[attr-defined]  # not in the stubs


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler (protoc's registration before grpcio 1.63 makes only these) whose handlers are wrapped, each
    method's once."""

    def __init__(self, inner: grpc.GenericRpcHandler, registrar: Registrar) -> None:
        self.inner = inner
        self.registrar = registrar
        self._made: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self.inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        made = self._made.get(method)
        if made is None or made[0] is not handler:
            made = self._made[method] = (handler, self.registrar.wrapped(method, handler))
        return made[1]
