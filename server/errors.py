"""Domain errors and their gRPC status codes, applied to every servicer method."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy.exc import DBAPIError, OperationalError

from pausable.server.states import InvalidTransition
from pausable.server.store import AlreadyExists, NotFound

log = logging.getLogger("pausable.server")


class InvalidArgument(Exception):
    pass


class Unavailable(Exception):
    pass


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str] | None:
    if isinstance(error, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, NotFound):
        return (
            grpc.StatusCode.NOT_FOUND,
            f"no operation with id {error.args[0]!r}; list the existing ones with ListOperations (`pausable ls`)",
        )
    if isinstance(error, InvalidTransition):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    if isinstance(error, Unavailable):
        return grpc.StatusCode.UNAVAILABLE, str(error)
    if isinstance(error, (OperationalError, DBAPIError)) and getattr(error, "connection_invalidated", True):
        return grpc.StatusCode.UNAVAILABLE, "the store is unreachable; retry shortly"
    return None


Request = TypeVar("Request")
Response = TypeVar("Response")


def _unexpected(method: str, error: BaseException) -> tuple[grpc.StatusCode, str]:
    log.exception("unexpected error in %s", method, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(error).__name__}; see the daemon's log"


def unary(
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
