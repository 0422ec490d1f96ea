"""The asyncio Python client of OperationService (grpc.aio), the async twin of `client.Client`.

    from pausable.clients import AsyncClient

    async with AsyncClient("127.0.0.1:50151", token="...", tls=True) as client:
        op = await client.start("demo.etl", {"rows": 10})
        await op.pause(); await op.resume()
        async for event in op.watch():
            print(event.seq, event.type)
        print(await op.wait(timeout=60))

Retry policies (`pausable.retry`, via `pausable.clients.common`), request
building and names are shared, so both clients behave alike: UNAVAILABLE and
RESOURCE_EXHAUSTED are retried with jittered backoff (DEADLINE_EXCEEDED too,
on reads), every other status is raised at once as a typed `PausableError`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
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
from pausable.clients.errors import from_rpc_error
from pausable.clients.model import BulkAction, Event, OperationData, StepRecord
from pausable.targets import channel_options, channel_target
from pausable.tracing import aio_client_interceptors
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

Reply = TypeVar("Reply")


class AsyncClient:
    """`token` (or the first line of `token_file`; without either, PAUSABLE_TOKEN or PAUSABLE_TOKEN_FILE from the
    environment): sent as `authorization: Bearer <token>` on every call. `tls`: True for TLS
    with the default roots, or a grpc.ssl_channel_credentials(...). `channel`: use this
    grpc.aio channel instead of opening one (tests pass a fake)."""

    def __init__(
        self,
        target: str,
        *,
        retry_seconds: float = 10.0,
        timeout: float = 30.0,
        token: str | None = None,
        tls: grpc.ChannelCredentials | bool | None = None,
        channel: grpc.aio.Channel | None = None,
        token_file: str | None = None,
    ) -> None:
        self.target = target
        self.retry_seconds = retry_seconds
        self.call_retry, self.read_retry = retry_policies(retry_seconds)
        self.timeout = timeout
        self.metadata = call_metadata(client_token(token, token_file))
        if channel is None:
            credentials = channel_credentials(tls)
            address, options, traced = channel_target(target), channel_options(), aio_client_interceptors()
            channel = (
                grpc.aio.secure_channel(address, credentials, options, interceptors=traced)
                if credentials
                else grpc.aio.insecure_channel(address, options, interceptors=traced)
            )
        self.channel = channel
        self.stub = operation_pb2_grpc.OperationServiceStub(channel)

    async def close(self) -> None:
        await self.channel.close(None)  # grace=None: cancel the calls in flight

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Callable[..., Awaitable[Reply]], request: Any, *, read: bool = False) -> Reply:
        """One call, retried only on UNAVAILABLE, RESOURCE_EXHAUSTED (and DEADLINE_EXCEEDED when `read`).

        Mutations are safe to retry because their requests carry a request_id.
        """
        policy = self.read_retry if read else self.call_retry
        try:
            return await policy.acall(lambda: method(request, timeout=self.timeout, metadata=self.metadata))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # -- calls ------------------------------------------------------------------

    async def start(
        self,
        workflow: str,
        input: Any = None,
        *,
        request_id: str | None = None,
        requester: str = "",
        labels: Mapping[str, str] | None = None,
        deadline: Seconds | None = None,
    ) -> AsyncOperation:
        """`deadline`: a budget of running time (seconds or a timedelta); time PAUSED does not count. Once it is
        used up the operation is cancelled at its next step boundary (error DEADLINE_EXCEEDED)."""
        request = start_request(workflow, input, request_id=request_id, requester=requester, labels=labels, deadline=deadline)
        return AsyncOperation(self, (await self._call(self.stub.StartOperation, request)).operation)

    async def get(self, operation_id: str) -> AsyncOperation:
        return AsyncOperation(self, await self._get(operation_id))

    async def _get(self, operation_id: str) -> pb.Operation:
        reply = await self._call(self.stub.GetOperation, pb.GetOperationRequest(operation_id=operation_id), read=True)
        return reply.operation

    async def list(
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
        return await self._call(self.stub.ListOperations, request, read=True)

    async def pause(
        self,
        operation_id: str,
        request_id: str | None = None,
        *,
        reason: str = "",
        before_step: int = 0,
        timeout: Seconds | None = None,
        on_timeout: str = "",
    ) -> AsyncOperation:
        """See Client.pause: `before_step=N` is a breakpoint before step N (1-based); `timeout`: once PAUSED that long
        with nobody resuming it, the daemon resumes it (`on_timeout="resume"`) or cancels it (`"cancel"`)."""
        request = pause_request(operation_id, request_id, reason, timeout, on_timeout, before_step)
        reply = await self._call(self.stub.Pause, request)
        return AsyncOperation(self, reply.operation)

    async def resume(
        self, operation_id: str, request_id: str | None = None, *, reason: str = "", input: Any = NO_INPUT
    ) -> AsyncOperation:
        """`input`: what the next step receives instead of the stored last result (see Client.resume)."""
        reply = await self._call(self.stub.Resume, resume_request(operation_id, request_id, reason, input))
        return AsyncOperation(self, reply.operation)

    async def retry(self, operation_id: str, request_id: str | None = None, *, reason: str = "") -> AsyncOperation:
        """Run a FAILED or CANCELLED operation again from the step that failed (or was interrupted)."""
        reply = await self._call(self.stub.Retry, command_request("Retry", operation_id, request_id, reason))
        return AsyncOperation(self, reply.operation)

    async def fork(
        self,
        operation_id: str,
        from_step: int,
        input: Any = NO_INPUT,
        *,
        request_id: str | None = None,
        reason: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> AsyncOperation:
        """A new operation of the same workflow starting at the 1-based `from_step` (see Client.fork)."""
        request = fork_request(operation_id, from_step, input, request_id=request_id, reason=reason, labels=labels)
        return AsyncOperation(self, (await self._call(self.stub.Fork, request)).operation)

    async def steps(self, operation_id: str, *, results: bool = False) -> builtins.list[StepRecord]:
        """The operation's step history, oldest first; `results`: with each step's result."""
        return [StepRecord.from_proto(record) for record in (await self.history(operation_id, results)).steps]

    async def forks(self, operation_id: str) -> builtins.list[str]:
        """Ids of the operations forked from this one, oldest first."""
        return list((await self.history(operation_id, False)).forks)

    async def history(self, operation_id: str, results: bool = False) -> pb.GetOperationResponse:
        request = pb.GetOperationRequest(operation_id=operation_id, step_view=step_view(results))
        return await self._call(self.stub.GetOperation, request, read=True)

    async def cancel(
        self, operation_id: str, request_id: str | None = None, *, reason: str = "", force: bool = False
    ) -> AsyncOperation:
        """See Client.cancel: `force=True` cancels at once and terminates the running step."""
        reply = await self._call(self.stub.Cancel, command_request("Cancel", operation_id, request_id, reason, force=force))
        return AsyncOperation(self, reply.operation)

    async def bulk_pause(self, operation_ids: Sequence[str] | None = None, **selection: Any) -> BulkAction:
        """Pause many operations; see Client.bulk_pause."""
        return await self._bulk("BulkPause", operation_ids, **selection)

    async def bulk_resume(self, operation_ids: Sequence[str] | None = None, **selection: Any) -> BulkAction:
        return await self._bulk("BulkResume", operation_ids, **selection)

    async def bulk_cancel(self, operation_ids: Sequence[str] | None = None, **selection: Any) -> BulkAction:
        return await self._bulk("BulkCancel", operation_ids, **selection)

    async def _bulk(
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
        return BulkAction.from_proto((await self._call(getattr(self.stub, method), request)).bulk_action)

    async def get_bulk_action(self, bulk_action_id: str) -> BulkAction:
        request = pb.GetBulkActionRequest(bulk_action_id=bulk_action_id)
        return BulkAction.from_proto((await self._call(self.stub.GetBulkAction, request, read=True)).bulk_action)

    async def watch_bulk_action(self, bulk_action_id: str, timeout: float | None = None) -> AsyncIterator[BulkAction]:
        """The bulk action now, then each time its progress changes, until it is done."""
        call = self.stub.WatchBulkAction(
            pb.WatchBulkActionRequest(bulk_action_id=bulk_action_id), timeout=timeout, metadata=self.metadata
        )
        try:
            async for response in call:
                yield BulkAction.from_proto(response.bulk_action)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    async def workflows(self) -> builtins.list[pb.Workflow]:
        return list((await self._call(self.stub.ListWorkflows, pb.ListWorkflowsRequest(), read=True)).workflows)

    async def watch(
        self, operation_id: str, after_seq: int = 0, *, reconnect_seconds: float = 60.0
    ) -> AsyncGenerator[Event, None]:
        """Every event after `after_seq`, each once, in order, until the terminal one (`Event.raw`: the protobuf).

        A broken stream (daemon restart, network) is reopened with the last
        seq seen as after_seq; events the daemon sends again are dropped, so
        none repeats and none is skipped. Reconnecting gives up after
        `reconnect_seconds` without a new event.
        """
        last = after_seq
        backoff = self.call_retry.within(reconnect_seconds).backoff()
        while True:
            call = self.stub.Watch(pb.WatchRequest(operation_id=operation_id, after_seq=last), metadata=self.metadata)
            try:
                async for response in call:
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
            finally:
                call.cancel()
            await asyncio.sleep(delay)


class AsyncOperation(OperationData):
    """A handle on one operation; its properties (OperationData) are the last state seen, `.proto` the raw message."""

    def __init__(self, client: AsyncClient, proto: pb.Operation) -> None:
        super().__init__(proto)
        self.client = client

    async def refresh(self) -> AsyncOperation:
        self.proto = await self.client._get(self.id)
        return self

    async def pause(
        self, *, reason: str = "", before_step: int = 0, timeout: Seconds | None = None, on_timeout: str = ""
    ) -> AsyncOperation:
        self.proto = (
            await self.client.pause(self.id, reason=reason, before_step=before_step, timeout=timeout, on_timeout=on_timeout)
        ).proto
        return self

    async def resume(self, *, reason: str = "", input: Any = NO_INPUT) -> AsyncOperation:
        self.proto = (await self.client.resume(self.id, reason=reason, input=input)).proto
        return self

    async def retry(self, *, reason: str = "") -> AsyncOperation:
        self.proto = (await self.client.retry(self.id, reason=reason)).proto
        return self

    async def fork(self, from_step: int, input: Any = NO_INPUT, *, reason: str = "") -> AsyncOperation:
        """The new operation (this handle stays on the parent)."""
        return await self.client.fork(self.id, from_step, input, reason=reason)

    async def steps(self, *, results: bool = False) -> builtins.list[StepRecord]:
        return await self.client.steps(self.id, results=results)

    async def cancel(self, *, reason: str = "", force: bool = False) -> AsyncOperation:
        self.proto = (await self.client.cancel(self.id, reason=reason, force=force)).proto
        return self

    async def watch(self, after_seq: int = 0) -> AsyncIterator[Event]:
        async with contextlib.aclosing(self.client.watch(self.id, after_seq)) as events:
            async for event in events:
                self.proto = event.operation.proto
                yield event

    async def wait(self, timeout: float | None = None) -> Any:
        """Wait until the operation ends; return its result or raise OperationFailed.

        Follows Watch from the last seq seen (reconnecting as `watch` does);
        TimeoutError after `timeout` seconds.
        """
        if not self.done:
            try:
                async with asyncio.timeout(timeout):
                    async with contextlib.aclosing(self.client.watch(self.id, self.proto.last_seq)) as events:
                        async for event in events:
                            self.proto = event.operation.proto
                    await self.refresh()
            except TimeoutError:
                raise TimeoutError(f"operation {self.id} is still {self.state} after {timeout}s") from None
        return outcome(self.proto)


def connect(
    target: str, *, token: str | None = None, tls: grpc.ChannelCredentials | bool | None = None, **options: Any
) -> AsyncClient:
    """An AsyncClient; `token` is sent as a bearer token on every call, `tls` is True or channel credentials."""
    return AsyncClient(target, token=token, tls=tls, **options)


__all__ = ["AsyncClient", "AsyncOperation", "connect"]
