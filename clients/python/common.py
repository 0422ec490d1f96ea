"""What the sync `Client` and the `AsyncClient` share: retry policies, names, requests, credentials.

Only pure pieces live here (no I/O), so both clients behave the same and a
change to the retry policy or to a request is made once.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

import grpc
from google.protobuf import duration_pb2

from pausable.clients.errors import OperationFailed
from pausable.clients.model import result_of, state_name
from pausable.jsonvalue import to_value
from pausable.retry import TRANSIENT, RetryPolicy
from pausable.v1 import operation_pb2 as pb


def retry_policies(retry_seconds: float) -> tuple[RetryPolicy, RetryPolicy]:
    """(every call, reads) for an SDK client: UNAVAILABLE and RESOURCE_EXHAUSTED, plus
    DEADLINE_EXCEEDED on reads, with jittered backoff for `retry_seconds`.

    Every call retried is safe to repeat: reads, and mutations that carry a request_id.
    """
    calls = RetryPolicy(TRANSIENT, patience=retry_seconds)
    return calls, calls.also(grpc.StatusCode.DEADLINE_EXCEEDED)


# -- requests -------------------------------------------------------------------


def start_request(
    workflow: str,
    input: Any,
    *,
    request_id: str | None,
    requester: str,
    labels: Mapping[str, str] | None,
    deadline: Seconds | None = None,
) -> pb.StartOperationRequest:
    """A fresh request_id by default, so a retried Start never creates a second operation. `deadline`: a budget of
    running time (seconds or a timedelta; time PAUSED does not count), past which the operation is cancelled
    (DEADLINE_EXCEEDED)."""
    request = pb.StartOperationRequest(
        workflow=workflow, request_id=request_id or uuid.uuid4().hex, requester=requester, labels=dict(labels or {})
    )
    if input is not None:
        request.input.CopyFrom(to_value(input))
    if deadline is not None:
        request.deadline.CopyFrom(duration(deadline))
    return request


Seconds = float | timedelta
ON_TIMEOUT = {"resume": pb.PAUSE_TIMEOUT_ACTION_RESUME, "cancel": pb.PAUSE_TIMEOUT_ACTION_CANCEL}


def duration(value: Seconds) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value if isinstance(value, timedelta) else timedelta(seconds=value))
    return message


def pause_request(
    operation_id: str, request_id: str | None, reason: str, timeout: Seconds | None, on_timeout: str, before_step: int = 0
) -> pb.PauseRequest:
    """A Pause; `before_step`: a breakpoint; with `timeout`, the daemon acts on its own once the operation has been
    PAUSED that long: `on_timeout` "resume" or "cancel"."""
    request = pb.PauseRequest(
        operation_id=operation_id, request_id=request_id or uuid.uuid4().hex, reason=reason, before_step=before_step
    )
    if timeout is not None:
        if on_timeout not in ON_TIMEOUT:
            raise ValueError(f"on_timeout must be 'resume' or 'cancel', not {on_timeout!r}")
        request.timeout.CopyFrom(duration(timeout))
        request.on_timeout = ON_TIMEOUT[on_timeout]
    return request


BULK: dict[str, type[pb.BulkPauseRequest | pb.BulkResumeRequest | pb.BulkCancelRequest]] = {
    "BulkPause": pb.BulkPauseRequest,
    "BulkResume": pb.BulkResumeRequest,
    "BulkCancel": pb.BulkCancelRequest,
}


def bulk_request(
    method: str,
    operation_ids: Sequence[str] | None,
    *,
    states: Sequence[int] | None,
    workflow: str,
    labels: Mapping[str, str] | None,
    requester: str,
    request_id: str | None,
    reason: str,
) -> Any:
    """BulkPause/BulkResume/BulkCancel of `operation_ids`, or, when None, of every operation the filter matches
    (no filter at all: every operation). A fresh request_id by default, so a retry makes one bulk action."""
    request = BULK[method](request_id=request_id or uuid.uuid4().hex, reason=reason)
    if operation_ids is not None:
        if not operation_ids:
            raise ValueError("operation_ids is empty: give at least one id, or None to select by filter")
        request.operation_ids.extend(operation_ids)
        return request
    request.selector.CopyFrom(
        pb.OperationSelector(
            states=cast("list[pb.OperationState]", list(states or [])),
            workflow=workflow,
            labels=dict(labels or {}),
            requester=requester,
        )
    )
    return request


def list_request(
    states: list[int] | None,
    workflow: str,
    page_size: int,
    page_token: str,
    stuck: bool = False,
    view: int = pb.OPERATION_VIEW_BASIC,
    labels: Mapping[str, str] | None = None,
) -> pb.ListOperationsRequest:
    # The numbers of pb.OperationState; protoc's .pyi types the field as the enum's class.
    return pb.ListOperationsRequest(
        states=cast("list[pb.OperationState]", states or []),
        workflow=workflow,
        page_size=page_size,
        page_token=page_token,
        stuck=stuck,
        view=cast("pb.OperationView", view),
        labels=dict(labels or {}),
    )


COMMANDS: dict[str, type[pb.PauseRequest | pb.ResumeRequest | pb.CancelRequest | pb.RetryRequest]] = {
    "Pause": pb.PauseRequest,
    "Resume": pb.ResumeRequest,
    "Cancel": pb.CancelRequest,
    "Retry": pb.RetryRequest,
}
# "No input given" (None is JSON null, a value): Resume and Fork send an input only when one is passed.
NO_INPUT: Any = type("NoInput", (), {"__repr__": lambda self: "NO_INPUT"})()


def command_request(method: str, operation_id: str, request_id: str | None, reason: str = "", **extra: Any) -> Any:
    """The request of Pause, Resume, Cancel or Retry, with a request_id so a retry applies it once; `reason`: a free-text
    note of why (at most 1000 characters), recorded on the event(s) the command appends. `extra`: the command's own
    fields (Pause's before_step, Cancel's force)."""
    return COMMANDS[method](operation_id=operation_id, request_id=request_id or uuid.uuid4().hex, reason=reason, **extra)


def resume_request(operation_id: str, request_id: str | None, reason: str = "", input: Any = NO_INPUT) -> pb.ResumeRequest:
    """Resume; `input`, when given, replaces the value the next step receives, sent as exact JSON text."""
    request: pb.ResumeRequest = command_request("Resume", operation_id, request_id, reason)
    if input is not NO_INPUT:
        request.input_json = json.dumps(input)
    return request


def fork_request(
    operation_id: str,
    from_step: int,
    input: Any = NO_INPUT,
    *,
    request_id: str | None,
    reason: str = "",
    labels: Mapping[str, str] | None = None,
) -> pb.ForkRequest:
    """Fork, with a fresh request_id by default so a retried call makes one fork; `input` as exact JSON text."""
    request = pb.ForkRequest(
        operation_id=operation_id,
        from_step=from_step,
        request_id=request_id or uuid.uuid4().hex,
        reason=reason,
        labels=dict(labels or {}),
    )
    if input is not NO_INPUT:
        request.input_json = json.dumps(input)
    return request


def step_view(results: bool) -> pb.StepView:
    return pb.STEP_VIEW_FULL if results else pb.STEP_VIEW_BASIC


# -- results --------------------------------------------------------------------


def outcome(operation: pb.Operation) -> Any:
    """The result of a finished operation, or OperationFailed when it FAILED or was CANCELLED."""
    if operation.state == pb.OPERATION_STATE_SUCCEEDED:
        return result_of(operation)
    detail = f": {operation.error.code}: {operation.error.message}" if operation.HasField("error") else ""
    raise OperationFailed(f"operation {operation.id} ended {state_name(operation.state)}{detail}")


# -- channels -------------------------------------------------------------------


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Sent on every call: `authorization: Bearer <token>` when a token is given."""
    if not token:
        return ()
    return (("authorization", token if token.lower().startswith("bearer ") else f"Bearer {token}"),)


def read_token(token: str | None = None, token_file: str | None = None) -> str | None:
    """The bearer token: `token`, else the first line of `token_file` (surrounding whitespace dropped)."""
    if token:
        return token
    if token_file:
        with open(token_file, encoding="utf-8") as file:
            return file.read().strip() or None
    return None


TOKEN_ENV, TOKEN_FILE_ENV = "PAUSABLE_TOKEN", "PAUSABLE_TOKEN_FILE"


def client_token(token: str | None = None, token_file: str | None = None) -> str | None:
    """The SDK clients' bearer token: `token` or `token_file` when either is given, else the environment's
    PAUSABLE_TOKEN, else the file named by PAUSABLE_TOKEN_FILE (as the CLI reads them); None without any."""
    if token or token_file:
        return read_token(token, token_file)
    return read_token(os.environ.get(TOKEN_ENV), os.environ.get(TOKEN_FILE_ENV))


def tls_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files: the CA that signed the daemon's certificate (empty: the default roots),
    and a client certificate and key for mutual TLS; None when all three are empty (plaintext)."""
    if not (ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise ValueError("a client certificate needs both its certificate and its key (--tls-cert and --tls-key)")

    def read(path: str) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as file:
            return file.read()

    return grpc.ssl_channel_credentials(read(ca), read(key), read(cert))


def channel_credentials(tls: grpc.ChannelCredentials | bool | None) -> grpc.ChannelCredentials | None:
    """None for plaintext; True means TLS with the default root certificates."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    raise TypeError(f"tls must be True, False, None or grpc.ChannelCredentials, not {type(tls).__name__}")
