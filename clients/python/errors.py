"""Typed exceptions for gRPC status codes, carrying the server's message."""

from __future__ import annotations

import grpc


class PausableError(Exception):
    """Base of every error the client raises for a failed call."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(PausableError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(PausableError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(PausableError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(PausableError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(PausableError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(PausableError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(PausableError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(PausableError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(PausableError):
    code = grpc.StatusCode.PERMISSION_DENIED


class OutOfRange(PausableError):
    """E.g. Watch after a seq the operation has not reached; the message names its last seq."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Internal(PausableError):
    code = grpc.StatusCode.INTERNAL


class OperationFailed(PausableError):
    """`Operation.wait()` on an operation that ended FAILED or CANCELLED."""


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        DeadlineExceeded,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        OutOfRange,
        Internal,
    )
}


def from_rpc_error(error: grpc.RpcError) -> PausableError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return _BY_CODE.get(code, PausableError)(details or code.name, code)
