"""A handler wrapper for every RPC (handlers.py): operation_id in the log context, an access log for commands, RPC
metrics.

For every call whose request names an operation (`operation_id`, or a
google.longrunning `name` "operations/<id>") it sets
`pausable.logs.OPERATION_ID` while the servicer runs, so every log line of
that call carries the id. Commands (start, pause, resume, cancel, delete) get
one INFO line each with the status code and duration; other calls log at
DEBUG. With metrics on, every call, streaming ones included, is timed into
`pausable_rpc_duration_seconds{service,method,code}` (checkpoint decisions
are counted by the engine: Observability.checkpoint_decided).

Each method's handler is wrapped once, when it is registered.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import grpc

from pausable.logs import OPERATION_ID
from pausable.server.auth import current_principal
from pausable.server.encoded import Encoded
from pausable.server.handlers import HandlerWrapper
from pausable.server.longrunning import PREFIX as LRO_PREFIX
from pausable.server.longrunning import SERVICE_NAME as LRO_SERVICE
from pausable.server.metrics import DaemonMetrics

log = logging.getLogger("pausable.server.rpc")

_OPS = "/pausable.v1.OperationService/"
COMMANDS = frozenset(
    {
        f"{_OPS}StartOperation",
        f"{_OPS}Pause",
        f"{_OPS}Resume",
        f"{_OPS}Cancel",
        f"{_OPS}Retry",
        f"{_OPS}Fork",
        f"/{LRO_SERVICE}/CancelOperation",
        f"/{LRO_SERVICE}/DeleteOperation",
    }
)
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def operation_of(method: str, request: Any) -> str | None:
    operation_id = getattr(request, "operation_id", None)
    if operation_id:
        return str(operation_id)
    if method.startswith(f"/{LRO_SERVICE}/"):
        name = getattr(request, "name", "")
        if isinstance(name, str) and name.startswith(LRO_PREFIX):
            return name.removeprefix(LRO_PREFIX)
    return None


def status_code(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """How the call ended: the code the servicer set (abort, set_code), CANCELLED when the client went away."""
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - not every grpc version implements code()
        code = None
    if isinstance(code, int):
        code = _CODES.get(code)
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


def _details(context: grpc.aio.ServicerContext) -> str:
    try:
        details = context.details()
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(details, bytes):
        details = details.decode("utf-8", "replace")
    return details or ""


class RpcObserver(HandlerWrapper):
    def __init__(self, metrics: DaemonMetrics | None = None) -> None:
        super().__init__()
        self.metrics = metrics

    # -- bookkeeping at the end of a call ---------------------------------------

    def _finish(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        started: float,
        error: BaseException | None,
        operation_id: str | None,
        reply: Any,
    ) -> None:
        try:
            code = status_code(context, error)
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe_rpc(method, code, seconds)
            command = method in COMMANDS
            if command or log.isEnabledFor(logging.DEBUG):
                if operation_id is None and reply is not None and method == f"{_OPS}StartOperation":
                    operation_id = (reply.message if isinstance(reply, Encoded) else reply).operation.id or None
                details = _details(context) if code != grpc.StatusCode.OK else ""
                identity = current_principal().name or "unauthenticated"
                log.log(
                    logging.INFO if command else logging.DEBUG,
                    "%s %s by %s in %.1f ms%s",
                    method.rpartition("/")[2],
                    code.name,
                    identity,
                    seconds * 1000,
                    f": {details}" if details else "",
                    extra={"operation_id": operation_id, "rpc": method, "code": code.name, "identity": identity},
                )
        except Exception:
            log.exception("observing %s failed", method)

    # -- wrapping the four kinds of handlers ------------------------------------

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        serializers = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(method, handler.unary_unary, True), **serializers)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._unary(method, handler.stream_unary, False), **serializers)
        if handler.unary_stream is not None:
            behavior = self._stream(method, handler.unary_stream, True)
            return handler if behavior is None else grpc.unary_stream_rpc_method_handler(behavior, **serializers)
        if handler.stream_stream is not None:
            behavior = self._stream(method, handler.stream_stream, False)
            return handler if behavior is None else grpc.stream_stream_rpc_method_handler(behavior, **serializers)
        return handler

    @contextmanager
    def _observing(
        self, method: str, request: Any, context: grpc.aio.ServicerContext, unary_request: bool
    ) -> Iterator[SimpleNamespace]:
        """One call: operation_id in the log context while it runs, then `_finish` with how it ended (and its `reply`)."""
        started = time.perf_counter()
        operation_id = operation_of(method, request) if unary_request else None
        OPERATION_ID.set(operation_id)
        call = SimpleNamespace(reply=None)
        error: BaseException | None = None
        try:
            yield call
        except BaseException as caught:
            error = caught
            raise
        finally:
            self._finish(method, context, started, error, operation_id, call.reply)
            OPERATION_ID.set(None)

    def _unary(
        self, method: str, behavior: Callable[[Any, Any], Awaitable[Any]], unary_request: bool
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._observing(method, request, context, unary_request) as call:
                call.reply = await behavior(request, context)
                return call.reply

        return observed

    def _stream(self, method: str, behavior: Callable[[Any, Any], Any], unary_request: bool) -> Callable[[Any, Any], Any] | None:
        if inspect.isasyncgenfunction(behavior):

            async def observed_generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                with self._observing(method, request, context, unary_request):
                    async for item in behavior(request, context):
                        yield item

            return observed_generator
        if inspect.iscoroutinefunction(behavior):  # writes with context.write()
            return self._unary(method, behavior, unary_request)
        return None  # a synchronous generator (not used by this daemon): left as it is
