"""The synchronous Python client of OperationService.

from pausable.clients import connect

client = connect("127.0.0.1:50151")            # or connect(target, token=..., tls=True)
op = client.start("demo.etl", {"rows": 10})
op.pause(); op.resume()
for event in op.watch():
    print(event.seq, event.type)
print(op.wait(timeout=60))
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

import grpc

from pausable.clients.common import (
    NO_INPUT,
    Seconds,
    bulk_request,
    call_metadata,
    channel_credentials,
    client_token,
    command_request,
    fork_request,
    list_request,
    outcome,
    pause_request,
    resume_request,
    retry_policies,
    start_request,
    step_view,
)
from pausable.clients.errors import PausableError, from_rpc_error
from pausable.clients.model import BulkAction, Event, OperationData, StepRecord, event_name, state_name
from pausable.targets import channel_options, channel_target
from pausable.tracing import client_channel
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

Reply = TypeVar("Reply")


class Client:
    """`token` (or the first line of `token_file`; without either, PAUSABLE_TOKEN or PAUSABLE_TOKEN_FILE from the
    environment): sent as `authorization: Bearer <token>` on every call. `tls`: True for
    TLS with the default roots, or a grpc.ssl_channel_credentials(...)."""

    def __init__(
        self,
        target: str,
        *,
        retry_seconds: float = 10.0,
        timeout: float = 30.0,
        token: str | None = None,
        tls: grpc.ChannelCredentials | bool | None = None,
        token_file: str | None = None,
    ) -> None:
        self.target = target
        self.retry_seconds = retry_seconds
        self.call_retry, self.read_retry = retry_policies(retry_seconds)
        self.timeout = timeout
        self.metadata = call_metadata(client_token(token, token_file))
        credentials = channel_credentials(tls)
        address, options = channel_target(target), channel_options()
        self._connection = (
            grpc.secure_channel(address, credentials, options) if credentials else grpc.insecure_channel(address, options)
        )
        self.channel = client_channel(self._connection)  # trace context, when OpenTelemetry is on
        self.stub = operation_pb2_grpc.OperationServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether the daemon accepts a connection: False as soon as connecting fails (nothing listens), or after
        `timeout` seconds without an answer. Calls themselves retry UNAVAILABLE for longer (`retry_seconds`)."""
        answered = threading.Event()
        states: list[grpc.ChannelConnectivity] = []

        def seen(state: grpc.ChannelConnectivity) -> None:
            if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
                states.append(state)
                answered.set()

        self._connection.subscribe(seen, try_to_connect=True)
        try:
            answered.wait(timeout)
        finally:
            self._connection.unsubscribe(seen)
        return bool(states) and states[0] == grpc.ChannelConnectivity.READY

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., Reply], request: Any, *, read: bool = False) -> Reply:
        """One call; only UNAVAILABLE and RESOURCE_EXHAUSTED (and DEADLINE_EXCEEDED
        for reads) are retried, with jittered backoff.

        Every call retried here is safe to repeat: reads, and mutations that
        carry a request_id.
        """
        policy = self.read_retry if read else self.call_retry
        try:
            return policy.call(lambda: method(request, timeout=self.timeout, metadata=self.metadata))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # -- calls ------------------------------------------------------------------

    def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        request_id: str | None = None,
        requester: str = "",
        labels: Mapping[str, str] | None = None,
        deadline: Seconds | None = None,
    ) -> Operation:
        """`deadline`: a budget of running time (seconds or a timedelta); time PAUSED does not count. Once it is
        used up the operation is cancelled at its next step boundary (error DEADLINE_EXCEEDED)."""
        request = start_request(workflow, input, request_id=request_id, requester=requester, labels=labels, deadline=deadline)
        return Operation(self, self._call(self.stub.StartOperation, request).operation)

    def get(self, operation_id: str) -> Operation:
        return Operation(self, self._get(operation_id))

    def _get(self, operation_id: str) -> pb.Operation:
        return self._call(self.stub.GetOperation, pb.GetOperationRequest(operation_id=operation_id), read=True).operation

    def list(
        self,
        *,
        states: list[int] | None = None,
        workflow: str = "",
        page_size: int = 0,
        page_token: str = "",
        stuck: bool = False,
        view: int = pb.OPERATION_VIEW_BASIC,
        labels: Mapping[str, str] | None = None,
    ) -> pb.ListOperationsResponse:
        """Newest first; `stuck`: only active operations whose step lease lapsed; `labels`: only those carrying all of
        these; `view`: OPERATION_VIEW_FULL to get each operation's input and result too (BASIC leaves them out; a page
        may end early, see next_page_token)."""
        request = list_request(states, workflow, page_size, page_token, stuck, view, labels)
        return self._call(self.stub.ListOperations, request, read=True)

    def pause(
        self,
        operation_id: str,
        request_id: str | None = None,
        *,
        reason: str = "",
        before_step: int = 0,
        timeout: Seconds | None = None,
        on_timeout: str = "",
    ) -> Operation:
        """Pause at the next step boundary (or within a step that checks stop_requested()); `before_step=N`: a
        breakpoint, the operation pauses when it reaches step N (1-based) and stays RUNNING until then. `timeout`:
        once PAUSED that long with nobody resuming it, the daemon resumes it (`on_timeout="resume"`) or cancels it
        (`"cancel"`)."""
        request = pause_request(operation_id, request_id, reason, timeout, on_timeout, before_step)
        return Operation(self, self._call(self.stub.Pause, request).operation)

    def resume(self, operation_id: str, request_id: str | None = None, *, reason: str = "", input: Any = NO_INPUT) -> Operation:
        """`input`: what the next step receives instead of the stored last result (only for a PAUSED operation;
        checked against that step's input schema, else InvalidArgument and nothing changes)."""
        request = resume_request(operation_id, request_id, reason, input)
        return Operation(self, self._call(self.stub.Resume, request).operation)

    def retry(self, operation_id: str, request_id: str | None = None, *, reason: str = "") -> Operation:
        """Run a FAILED or CANCELLED operation again from the step that failed (or was interrupted)."""
        request = command_request("Retry", operation_id, request_id, reason)
        return Operation(self, self._call(self.stub.Retry, request).operation)

    def fork(
        self,
        operation_id: str,
        from_step: int,
        input: Any = NO_INPUT,
        *,
        request_id: str | None = None,
        reason: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Operation:
        """A new operation of the same workflow starting at the 1-based `from_step`, fed what the parent's step
        received (or `input`)."""
        request = fork_request(operation_id, from_step, input, request_id=request_id, reason=reason, labels=labels)
        return Operation(self, self._call(self.stub.Fork, request).operation)

    def steps(self, operation_id: str, *, results: bool = False) -> builtins.list[StepRecord]:
        """The operation's step history, oldest first; `results`: with each step's result."""
        return [StepRecord.from_proto(record) for record in self.history(operation_id, results).steps]

    def forks(self, operation_id: str) -> builtins.list[str]:
        """Ids of the operations forked from this one, oldest first."""
        return list(self.history(operation_id, False).forks)

    def history(self, operation_id: str, results: bool = False) -> pb.GetOperationResponse:
        request = pb.GetOperationRequest(operation_id=operation_id, step_view=step_view(results))
        return self._call(self.stub.GetOperation, request, read=True)

    def cancel(self, operation_id: str, request_id: str | None = None, *, reason: str = "", force: bool = False) -> Operation:
        """Cancel at the next step boundary; `force=True`: CANCELLED at once, its running step terminated."""
        request = command_request("Cancel", operation_id, request_id, reason, force=force)
        return Operation(self, self._call(self.stub.Cancel, request).operation)

    def bulk_pause(self, operation_ids: Sequence[str] | None = None, **selection: Any) -> BulkAction:
        """Pause many operations: `operation_ids`, or (None) every one matching `states`, `workflow`, `labels`,
        `requester` (none of them: every operation). Also `request_id`, `reason`. The daemon works through them in
        the background: the bulk action returned shows its progress; see wait_bulk_action, watch_bulk_action."""
        return self._bulk("BulkPause", operation_ids, **selection)

    def bulk_resume(self, operation_ids: Sequence[str] | None = None, **selection: Any) -> BulkAction:
        """Resume many operations; see bulk_pause."""
        return self._bulk("BulkResume", operation_ids, **selection)

    def bulk_cancel(self, operation_ids: Sequence[str] | None = None, **selection: Any) -> BulkAction:
        """Cancel many operations; see bulk_pause."""
        return self._bulk("BulkCancel", operation_ids, **selection)

    def _bulk(
        self,
        method: str,
        operation_ids: Sequence[str] | None,
        *,
        states: Sequence[int] | None = None,
        workflow: str = "",
        labels: Mapping[str, str] | None = None,
        requester: str = "",
        request_id: str | None = None,
        reason: str = "",
    ) -> BulkAction:
        request = bulk_request(
            method,
            operation_ids,
            states=states,
            workflow=workflow,
            labels=labels,
            requester=requester,
            request_id=request_id,
            reason=reason,
        )
        return BulkAction.from_proto(self._call(getattr(self.stub, method), request).bulk_action)

    def get_bulk_action(self, bulk_action_id: str) -> BulkAction:
        request = pb.GetBulkActionRequest(bulk_action_id=bulk_action_id)
        return BulkAction.from_proto(self._call(self.stub.GetBulkAction, request, read=True).bulk_action)

    def watch_bulk_action(self, bulk_action_id: str, timeout: float | None = None) -> Iterator[BulkAction]:
        """The bulk action now, then each time its progress changes, until it is done."""
        request = pb.WatchBulkActionRequest(bulk_action_id=bulk_action_id)
        try:
            for response in self.stub.WatchBulkAction(request, timeout=timeout, metadata=self.metadata):
                yield BulkAction.from_proto(response.bulk_action)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def wait_bulk_action(self, bulk_action_id: str, timeout: float | None = None) -> BulkAction:
        """The bulk action once every operation it matched was processed."""
        last = None
        for last in self.watch_bulk_action(bulk_action_id, timeout):
            pass
        assert last is not None and last.done_processing, f"bulk action {bulk_action_id} ended its stream unfinished"
        return last

    def workflows(self) -> builtins.list[pb.Workflow]:
        return list(self._call(self.stub.ListWorkflows, pb.ListWorkflowsRequest(), read=True).workflows)

    def watch(self, operation_id: str, after_seq: int = 0, *, reconnect_seconds: float = 60.0) -> Iterator[Event]:
        """Every event after `after_seq`, each once, in order, until the terminal one (`Event.raw`: the protobuf).

        A broken stream (daemon restart, network) is reopened from the last
        seq seen; reconnecting gives up after `reconnect_seconds` without progress.
        """
        last = after_seq
        backoff = self.call_retry.within(reconnect_seconds).backoff()
        while True:
            try:
                for response in self.stub.Watch(
                    pb.WatchRequest(operation_id=operation_id, after_seq=last), metadata=self.metadata
                ):
                    event = response.event
                    if event.seq <= last:
                        continue
                    last = event.seq
                    backoff.reset()
                    yield Event.from_proto(event)
                return
            except grpc.RpcError as error:
                delay = backoff.next_delay() if self.call_retry.retryable(error) else None
                if delay is None:
                    raise from_rpc_error(error) from None
            time.sleep(delay)


class Operation(OperationData):
    """A handle on one operation; its properties (OperationData) are the last state seen, `.proto` the raw message."""

    def __init__(self, client: Client, proto: pb.Operation) -> None:
        super().__init__(proto)
        self.client = client

    def refresh(self) -> Operation:
        self.proto = self.client._get(self.id)
        return self

    def pause(self, *, reason: str = "", before_step: int = 0, timeout: Seconds | None = None, on_timeout: str = "") -> Operation:
        self.proto = self.client.pause(
            self.id, reason=reason, before_step=before_step, timeout=timeout, on_timeout=on_timeout
        ).proto
        return self

    def resume(self, *, reason: str = "", input: Any = NO_INPUT) -> Operation:
        self.proto = self.client.resume(self.id, reason=reason, input=input).proto
        return self

    def retry(self, *, reason: str = "") -> Operation:
        self.proto = self.client.retry(self.id, reason=reason).proto
        return self

    def fork(self, from_step: int, input: Any = NO_INPUT, *, reason: str = "") -> Operation:
        """The new operation (this handle stays on the parent)."""
        return self.client.fork(self.id, from_step, input, reason=reason)

    def steps(self, *, results: bool = False) -> builtins.list[StepRecord]:
        return self.client.steps(self.id, results=results)

    def cancel(self, *, reason: str = "", force: bool = False) -> Operation:
        self.proto = self.client.cancel(self.id, reason=reason, force=force).proto
        return self

    def watch(self, after_seq: int = 0) -> Iterator[Event]:
        for event in self.client.watch(self.id, after_seq):
            self.proto = event.operation.proto
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
                    metadata=self.client.metadata,
                ):
                    self.proto = event.event.operation
            except grpc.RpcError as error:
                if not self.client.read_retry.retryable(error):
                    raise from_rpc_error(error) from None
            self.refresh()
        return outcome(self.proto)


def connect(
    target: str, *, token: str | None = None, tls: grpc.ChannelCredentials | bool | None = None, **options: Any
) -> Client:
    """A sync Client; `token` is sent as a bearer token on every call, `tls` is True or channel credentials."""
    return Client(target, token=token, tls=tls, **options)


__all__ = ["Client", "Operation", "PausableError", "connect", "event_name", "state_name"]
