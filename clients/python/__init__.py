"""The Python SDK: `connect(target)` returns a Client, `AsyncClient(target)` is its asyncio twin;
errors are typed by status code."""

from pausable.clients.aio import AsyncClient, AsyncOperation
from pausable.clients.client import Client, Operation, connect, event_name, state_name
from pausable.clients.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OperationFailed,
    PausableError,
    Unavailable,
)

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "AsyncOperation",
    "Client",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Operation",
    "OperationFailed",
    "PausableError",
    "Unavailable",
    "connect",
    "event_name",
    "state_name",
]
