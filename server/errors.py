"""Domain errors and their gRPC status codes, applied to every servicer method."""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pausable.server.auth import PermissionDenied, Unauthenticated
from pausable.server.domain import AlreadyExists, NotDispatched, NotFound, PastTheEnd, ShuttingDown, UnknownWorkflow
from pausable.server.states import InvalidTransition

log = logging.getLogger("pausable.server")


class InvalidArgument(Exception):
    pass


STORE_DOWN = (
    "the store (database) is unreachable or busy; nothing was changed: retry with the same request_id "
    "(workers retry on their own)"
)


# SQLSTATEs of a Postgres that is down, restarting, overloaded or busy (the same write may succeed later):
# connection exceptions (08), insufficient resources (53: too many connections, disk full), operator
# intervention (57: admin/crash shutdown, cannot connect now, statement timeout), lock not available
# (55P03), serialization failure and deadlock (40001, 40P01).
TRANSIENT_SQLSTATES = ("08", "53", "57", "55P03", "40001", "40P01")


def store_unavailable(error: BaseException) -> bool:
    """Connection refused or lost, a pool or lock timeout, a locked SQLite file: the store may answer again soon.

    Also the raw driver errors that reach us unwrapped: sqlite3's (the SQLite writer runs some statements
    on the sqlite3 connection itself) and asyncpg's (told apart by their SQLSTATE, without importing asyncpg).
    """
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeout, OSError, sqlite3.OperationalError)):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig if isinstance(error, DBAPIError) else error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(TRANSIENT_SQLSTATES)


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
    if isinstance(error, PastTheEnd):
        return grpc.StatusCode.OUT_OF_RANGE, str(error)
    if isinstance(error, InvalidTransition):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    if isinstance(error, NotDispatched):
        return grpc.StatusCode.PERMISSION_DENIED, (
            f"this step was not dispatched to you: {error}. Report with the pausable_step_token header of the "
            "step's message (a step sent again, or resumed, carries a new token; the old one changes nothing)"
        )
    if isinstance(error, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(error)
    if isinstance(error, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, str(error)
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
