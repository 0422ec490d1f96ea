"""The Python SDK: `connect(target)` returns a Client, `AsyncClient(target)` is its asyncio twin;
errors are typed by status code."""

from pausable.clients.aio import AsyncClient, AsyncOperation
from pausable.clients.client import Client, Operation, connect, event_name, state_name
from pausable.clients.common import read_token, tls_credentials
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
    "read_token",
    "state_name",
    "tls_credentials",
]
