"""OperationService: what clients call to start, steer and watch operations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC

import grpc

from pausable.jsonvalue import from_value, to_value
from pausable.server import validation
from pausable.server.convert import dumps, event_to_pb, operation_to_pb, state_from_pb
from pausable.server.dispatch import Dispatcher
from pausable.server.errors import InvalidArgument, Unavailable, unary
from pausable.server.flags import StopFlags
from pausable.server.hub import ALL, EventHub
from pausable.server.states import State
from pausable.server.store import OperationFilter, Store
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

log = logging.getLogger("pausable.server")
REPLAY_PAGE = 500


def operation_filter(request: pb.ListOperationsRequest | pb.WatchEventsRequest) -> OperationFilter:
    states = []
    for value in request.states:
        if value not in pb.OperationState.values() or value == pb.OPERATION_STATE_UNSPECIFIED:
            raise InvalidArgument(f"states contains {value}, which is not a valid OperationState; leave states empty for all")
        states.append(state_from_pb(value))
    return OperationFilter(
        states=states,
        workflow=request.workflow,
        labels=validation.labels(dict(request.labels)),
        requester=validation.short_text("requester", request.requester),
    )


class OperationService(operation_pb2_grpc.OperationServiceServicer):
    def __init__(self, store: Store, hub: EventHub, dispatcher: Dispatcher, flags: StopFlags) -> None:
        self.store = store
        self.hub = hub
        self.dispatcher = dispatcher
        self.flags = flags
        # Postgres may hold back an event behind an older transaction that sends
        # no notification (see Store.events_matching); re-read after this long.
        self.global_recheck_seconds = 1.0 if store.postgres else None

    @unary
    async def StartOperation(
        self, request: pb.StartOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartOperationResponse:
        if not request.workflow:
            raise InvalidArgument("workflow is required: name a registered workflow (see ListWorkflows / `pausable workflows`)")
        workflow = await self.store.get_workflow(request.workflow)
        if workflow is None:
            known = ", ".join(w.name for w in await self.store.list_workflows()) or "none yet"
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown workflow {request.workflow!r}; registered workflows: {known}. "
                "A workflow is registered when a worker that defines it starts (`pausable worker`).",
            )
        data = from_value(request.input) if request.HasField("input") else None
        change = await self.store.create_operation(
            workflow,
            input_json=validation.workflow_input(workflow.name, data, workflow.input_schema),
            request_id=validation.short_text("request_id", request.request_id),
            requester=validation.short_text("requester", request.requester),
            labels=validation.labels(dict(request.labels)),
        )
        if change.created:
            await self._dispatch(change.snapshot["id"], on_failure="fail", plan=(workflow.plan, 0, data))
        return pb.StartOperationResponse(operation=operation_to_pb(change.snapshot))

    async def _dispatch(self, operation_id: str, *, on_failure: str, plan: tuple[list[dict], int, object] | None = None) -> None:
        """Send the rest of the plan (read from the store unless the caller has it) to the broker."""
        steps, start, argument = plan or await self.store.plan_of(operation_id)
        try:
            await self.dispatcher.dispatch(operation_id, steps, start, argument)
        except Exception as error:
            log.warning("dispatch of %s failed: %s", operation_id, error)
            if on_failure == "fail":
                await self.store.fail(
                    operation_id, -1, {"code": "BROKER_UNAVAILABLE", "message": str(error), "step": -1, "step_name": ""}
                )
                raise Unavailable(
                    f"the broker refused the chain ({error}); operation {operation_id} is FAILED, start it again"
                ) from error
            await self.store.revert_resume(operation_id, f"resume failed, the broker refused the chain: {error}")
            raise Unavailable(
                f"the broker refused the chain ({error}); operation {operation_id} is still PAUSED, retry Resume"
            ) from error

    @unary
    async def GetOperation(self, request: pb.GetOperationRequest, context: grpc.aio.ServicerContext) -> pb.GetOperationResponse:
        snap = await self.store.get_operation(validation.operation_id(request.operation_id))
        return pb.GetOperationResponse(operation=operation_to_pb(snap))

    @unary
    async def ListOperations(
        self, request: pb.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOperationsResponse:
        limit = validation.page_size(request.page_size)
        where = operation_filter(request)
        if request.HasField("created_after"):
            where = replace(where, created_after=request.created_after.ToDatetime(tzinfo=UTC))
        if request.HasField("created_before"):
            where = replace(where, created_before=request.created_before.ToDatetime(tzinfo=UTC))
        rows = await self.store.list_operations(
            where, limit=limit + 1, before_id=validation.decode_page_token(request.page_token)
        )
        page = rows[:limit]
        token = validation.encode_page_token(page[-1]["id"]) if len(rows) > limit else ""
        return pb.ListOperationsResponse(operations=[operation_to_pb(s) for s in page], next_page_token=token)

    async def _command(self, kind: str, operation_id: str, request_id: str) -> pb.Operation:
        change = await self.store.command(
            validation.operation_id(operation_id), kind, validation.short_text("request_id", request_id)
        )
        await self.flags.follow(operation_id, State(change.snapshot["state"]))
        if change.dispatch:
            await self._dispatch(operation_id, on_failure="revert")
        return operation_to_pb(change.snapshot)

    @unary
    async def Pause(self, request: pb.PauseRequest, context: grpc.aio.ServicerContext) -> pb.PauseResponse:
        return pb.PauseResponse(operation=await self._command("pause", request.operation_id, request.request_id))

    @unary
    async def Resume(self, request: pb.ResumeRequest, context: grpc.aio.ServicerContext) -> pb.ResumeResponse:
        return pb.ResumeResponse(operation=await self._command("resume", request.operation_id, request.request_id))

    @unary
    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        return pb.CancelResponse(operation=await self._command("cancel", request.operation_id, request.request_id))

    @unary
    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext) -> None:
        """Written with context.write, so the fan-out hot path has one generator between the hub and the socket."""
        async for message in self.follow(request, context):
            await context.write(message)

    @unary
    async def WatchEvents(self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext) -> None:
        async for message in self.follow_all(request, context):
            await context.write(message)

    async def follow(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchResponse]:
        """The events of one operation after request.after_seq: from the store, then live; ends after the terminal one."""
        operation_id = validation.operation_id(request.operation_id)
        if request.after_seq < 0:
            raise InvalidArgument("after_seq must be 0 or more: 0 replays the whole history")
        subscription = self.hub.subscribe(operation_id)
        try:
            current = await self.store.get_operation(operation_id)
            last = request.after_seq
            if State(current["state"]).terminal and last >= current["last_seq"]:
                return
            while True:
                subscription.resync()
                replayed = await self.store.events_after(operation_id, last, REPLAY_PAGE)
                for event in replayed:
                    yield event_to_pb(event)
                    last = event.seq
                    if event.terminal:
                        return
                if len(replayed) == REPLAY_PAGE:
                    continue
                while (live := await subscription.next()) is not None:
                    if live.seq <= last:
                        continue
                    if live.seq != last + 1:
                        break
                    yield live.message
                    last = live.seq
                    if live.terminal:
                        return
                if subscription.closed:
                    await self._shutting_down(context, f"Watch with after_seq={last}")
        finally:
            self.hub.unsubscribe(subscription)

    async def follow_all(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        """The events of every matching operation after request.after_cursor; never ends."""
        where = operation_filter(request)
        cursor = validation.event_cursor(request.after_cursor)
        subscription = self.hub.subscribe(ALL)
        try:
            while True:
                subscription.resync()
                batch = await self.store.events_matching(where, cursor, REPLAY_PAGE)
                for event in batch:
                    yield pb.WatchEventsResponse(event=event_to_pb(event).event, cursor=event.cursor)
                    cursor = event.cursor
                if len(batch) == REPLAY_PAGE:
                    continue
                try:
                    await asyncio.wait_for(subscription.next(), self.global_recheck_seconds)
                except TimeoutError:
                    pass
                if subscription.closed:
                    await self._shutting_down(context, f"WatchEvents with after_cursor={cursor!r}")
        finally:
            self.hub.unsubscribe(subscription)

    @staticmethod
    async def _shutting_down(context: grpc.aio.ServicerContext, resume: str) -> None:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"the daemon is shutting down; reconnect and {resume}")

    @unary
    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkflowsResponse:
        workflows = []
        for row in await self.store.list_workflows():
            message = pb.Workflow(name=row.name, description=row.description, steps=row.steps, plan_json=dumps(row.plan))
            message.register_time.FromDatetime(row.registered_at)
            if row.input_schema is not None:
                message.input_schema.CopyFrom(to_value(row.input_schema))
            workflows.append(message)
        return pb.ListWorkflowsResponse(workflows=workflows)
