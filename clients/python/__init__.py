"""The Python SDK: `connect(target)` returns a Client, `AsyncClient(target)` is its asyncio twin;
errors are typed by status code; `watch()` yields typed `Event`s."""

from pausable.clients.aio import AsyncClient, AsyncOperation
from pausable.clients.client import Client, Operation, connect
from pausable.clients.common import read_token, tls_credentials
from pausable.clients.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OperationFailed,
    OutOfRange,
    PausableError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from pausable.clients.model import (
    Event,
    EventType,
    OperationData,
    State,
    StepError,
    StepRecord,
    event_dict,
    event_name,
    operation_dict,
    state_name,
    workflow_dict,
)

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "AsyncOperation",
    "Client",
    "DeadlineExceeded",
    "Event",
    "EventType",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "Operation",
    "OperationData",
    "OperationFailed",
    "OutOfRange",
    "PausableError",
    "PermissionDenied",
    "ResourceExhausted",
    "State",
    "StepError",
    "StepRecord",
    "Unauthenticated",
    "Unavailable",
    "connect",
    "event_dict",
    "event_name",
    "operation_dict",
    "read_token",
    "state_name",
    "tls_credentials",
    "workflow_dict",
]
