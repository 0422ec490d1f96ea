"""The synchronous Python client of OperationService.

    from pausable.clients import connect

    client = connect("127.0.0.1:50151")
    op = client.start("demo.etl", {"rows": 10})
    op.pause(); op.resume()
    for event in op.watch():
        print(event.seq, event.type)
    print(op.wait(timeout=60))
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc

from pausable.jsonvalue import from_value, to_value
from pausable.clients.errors import OperationFailed, PausableError, from_rpc_error
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

Reply = TypeVar("Reply")
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
TERMINAL = frozenset({pb.OPERATION_STATE_SUCCEEDED, pb.OPERATION_STATE_FAILED, pb.OPERATION_STATE_CANCELLED})


def state_name(state: int) -> str:
    return pb.OperationState.Name(state).removeprefix("OPERATION_STATE_")


def event_name(event_type: int) -> str:
    return pb.EventType.Name(event_type).removeprefix("EVENT_TYPE_")


class Client:
    def __init__(self, target: str, *, retry_seconds: float = 10.0, timeout: float = 30.0) -> None:
        self.target = target
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target)
        self.stub = operation_pb2_grpc.OperationServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Reply], request: Any) -> Reply:
        """One call; only UNAVAILABLE and RESOURCE_EXHAUSTED are retried, with jittered backoff.

        Every call retried here is safe to repeat: reads, and mutations that
        carry a request_id.
        """
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        while True:
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or time.monotonic() + delay > deadline:
                    raise from_rpc_error(error) from None
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 1.0)

    # -- calls ------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        request_id: str | None = None,
        requester: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Operation:
        request = pb.StartOperationRequest(
            workflow=workflow, request_id=request_id or uuid.uuid4().hex, requester=requester, labels=dict(labels or {})
        )
        if input is not None:
            request.input.CopyFrom(to_value(input))
        return Operation(self, self._call(self.stub.StartOperation, request).operation)

    def get(self, operation_id: str) -> Operation:
        return Operation(self, self._get(operation_id))

    def _get(self, operation_id: str) -> pb.Operation:
        return self._call(self.stub.GetOperation, pb.GetOperationRequest(operation_id=operation_id)).operation

    def list(
        self, *, states: list[int] | None = None, workflow: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListOperationsResponse:
        request = pb.ListOperationsRequest(states=states or [], workflow=workflow, page_size=page_size, page_token=page_token)
        return self._call(self.stub.ListOperations, request)

    def pause(self, operation_id: str, request_id: str | None = None) -> pb.Operation:
        request = pb.PauseRequest(operation_id=operation_id, request_id=request_id or uuid.uuid4().hex)
        return self._call(self.stub.Pause, request).operation

    def resume(self, operation_id: str, request_id: str | None = None) -> pb.Operation:
        request = pb.ResumeRequest(operation_id=operation_id, request_id=request_id or uuid.uuid4().hex)
        return self._call(self.stub.Resume, request).operation

    def cancel(self, operation_id: str, request_id: str | None = None) -> pb.Operation:
        request = pb.CancelRequest(operation_id=operation_id, request_id=request_id or uuid.uuid4().hex)
        return self._call(self.stub.Cancel, request).operation

    def workflows(self) -> list[pb.Workflow]:
        return list(self._call(self.stub.ListWorkflows, pb.ListWorkflowsRequest()).workflows)

    def watch(self, operation_id: str, after_seq: int = 0, *, reconnect_seconds: float = 60.0) -> Iterator[pb.OperationEvent]:
        """Every event after `after_seq`, each once, in order, until the terminal one.

        A broken stream (daemon restart, network) is reopened from the last
        seq seen; reconnecting gives up after `reconnect_seconds` without progress.
        """
        last = after_seq
        deadline = time.monotonic() + reconnect_seconds
        delay = 0.05
        while True:
            try:
                for response in self.stub.Watch(pb.WatchRequest(operation_id=operation_id, after_seq=last)):
                    event = response.event
                    if event.seq <= last:
                        continue
                    last = event.seq
                    deadline = time.monotonic() + reconnect_seconds
                    yield event
                return
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or time.monotonic() > deadline:
                    raise from_rpc_error(error) from None
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 1.0)


class Operation:
    """A handle on one operation; `.proto` is the last state seen."""

    def __init__(self, client: Client, proto: pb.Operation) -> None:
        self.client = client
        self.proto = proto

    @property
    def id(self) -> str:
        return self.proto.id

    @property
    def state(self) -> str:
        return state_name(self.proto.state)

    @property
    def done(self) -> bool:
        return self.proto.state in TERMINAL

    @property
    def result(self) -> Any:
        return from_value(self.proto.result) if self.proto.HasField("result") else None

    def refresh(self) -> Operation:
        self.proto = self.client._get(self.id)
        return self

    def pause(self) -> Operation:
        self.proto = self.client.pause(self.id)
        return self

    def resume(self) -> Operation:
        self.proto = self.client.resume(self.id)
        return self

    def cancel(self) -> Operation:
        self.proto = self.client.cancel(self.id)
        return self

    def watch(self, after_seq: int = 0) -> Iterator[pb.OperationEvent]:
        for event in self.client.watch(self.id, after_seq):
            self.proto = event.operation
            yield event

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the operation ends; return its result or raise OperationFailed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"operation {self.id} is still {self.state} after {timeout}s")
            try:
                for event in self.client.stub.Watch(
                    pb.WatchRequest(operation_id=self.id, after_seq=self.proto.last_seq),
                    timeout=None if deadline is None else max(deadline - time.monotonic(), 0.01),
                ):
                    self.proto = event.event.operation
            except grpc.RpcError as error:
                if error.code() not in (*RETRYABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise from_rpc_error(error) from None
            self.refresh()
        if self.proto.state == pb.OPERATION_STATE_SUCCEEDED:
            return self.result
        detail = f": {self.proto.error.code}: {self.proto.error.message}" if self.proto.HasField("error") else ""
        raise OperationFailed(f"operation {self.id} ended {self.state}{detail}")


def connect(target: str, **options: Any) -> Client:
    return Client(target, **options)


__all__ = ["Client", "Operation", "PausableError", "connect", "event_name", "state_name"]
