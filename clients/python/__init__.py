"""The Python SDK: `connect(target)` returns a Client; errors are typed by status code."""

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
