"""Domain errors and their gRPC status codes, applied to every servicer method."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pausable.server.domain import AlreadyExists, NotFound, ShuttingDown, UnknownWorkflow
from pausable.server.states import InvalidTransition

log = logging.getLogger("pausable.server")


class InvalidArgument(Exception):
    pass


class Unavailable(Exception):
    pass


STORE_DOWN = (
    "the store (database) is unreachable or busy; nothing was changed: retry with the same request_id "
    "(workers retry on their own)"
)


def store_unavailable(error: BaseException) -> bool:
    """Connection refused or lost, a pool or lock timeout, a locked SQLite file: the store may answer again soon."""
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeout, OSError)):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, NotFound):
        return (
            grpc.StatusCode.NOT_FOUND,
            f"no operation with id {error.args[0]!r}; list the existing ones with ListOperations (`pausable ls`)",
        )
    if isinstance(error, UnknownWorkflow):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, ShuttingDown):
        return grpc.StatusCode.UNAVAILABLE, f"the daemon is shutting down; reconnect and {error}"
    if isinstance(error, InvalidTransition):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    if isinstance(error, Unavailable):
        return grpc.StatusCode.UNAVAILABLE, str(error)
    if store_unavailable(error):
        log.warning("store unavailable: %s", error)
        return grpc.StatusCode.UNAVAILABLE, STORE_DOWN
    return None


Request = TypeVar("Request")
Response = TypeVar("Response")


def _unexpected(method: str, error: BaseException) -> tuple[grpc.StatusCode, str]:
    log.exception("unexpected error in %s", method, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(error).__name__}; see the daemon's log"


def rpc(
    method: Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]],
) -> Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Response:
        try:
            return await method(self, request, context)
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            code, message = status_of(error) or _unexpected(method.__name__, error)
            await context.abort(code, message)
            raise  # unreachable: abort raises

    return wrapper
