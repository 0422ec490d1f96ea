"""The shape every pausable server interceptor shares: wrap each method's handler once, not on every call.

grpc.aio asks each interceptor for the handler on every call; building new
handler objects each time costs a visible share of a small RPC. A
`HandlerWrapper` remembers, per method, the handler it was given and the
one it made, and makes a new one only when the handler inside changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc


class HandlerWrapper(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, self.wrap(method, handler))
        return cached[1]

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler to serve `method` with (`handler` itself to leave it as it is)."""
        raise NotImplementedError
