"""OperationService: what clients call to start, steer and watch operations; it validates and converts, the engine acts."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc

from pausable.jsonvalue import to_value
from pausable.server import auth, bulk, encoded, limits, timers, validation
from pausable.server.convert import (
    OperationParts,
    bulk_to_pb,
    dumps,
    heavy_all,
    operation_parts,
    reply,
    state_from_pb,
    step_record_to_pb,
)
from pausable.server.domain import BulkAction, Operation, OperationFilter
from pausable.server.encoded import Encoded
from pausable.server.engine import Engine
from pausable.server.errors import InvalidArgument, rpc
from pausable.server.offload import off_loop_if
from pausable.server.states import Command
from pausable.server.store import NewInput
from pausable.server.watching import Watching
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc

BULK_POLL_SECONDS = 0.25


def operation_filter(request: pb.ListOperationsRequest | pb.WatchEventsRequest | pb.OperationSelector) -> OperationFilter:
    states = []
    for value in request.states:
        if value not in pb.OperationState.values() or value == pb.OPERATION_STATE_UNSPECIFIED:
            raise InvalidArgument(f"states contains {value}, which is not a valid OperationState; leave states empty for all")
        states.append(state_from_pb(value))
    return OperationFilter(
        states=states,
        workflow=request.workflow,
        labels=validation.labels(dict(request.labels)),
        requester=auth.owner_filter(validation.short_text("requester", request.requester)),
    )


def pause_timeout(request: pb.PauseRequest) -> tuple[float, timers.OnTimeout] | None:
    """A Pause's timeout and what to do then; INVALID_ARGUMENT when one comes without the other."""
    actions = {pb.PAUSE_TIMEOUT_ACTION_RESUME: timers.OnTimeout.RESUME, pb.PAUSE_TIMEOUT_ACTION_CANCEL: timers.OnTimeout.CANCEL}
    if not request.HasField("timeout"):
        if request.on_timeout != pb.PAUSE_TIMEOUT_ACTION_UNSPECIFIED:
            raise InvalidArgument("on_timeout needs a timeout: give timeout (a Duration) too, or leave on_timeout unset")
        return None
    seconds = validation.duration("timeout", request.timeout)
    if request.on_timeout not in actions:
        raise InvalidArgument("a timeout needs on_timeout: PAUSE_TIMEOUT_ACTION_RESUME or PAUSE_TIMEOUT_ACTION_CANCEL")
    return seconds, actions[request.on_timeout]


def bulk_selection(
    request: pb.BulkPauseRequest | pb.BulkResumeRequest | pb.BulkCancelRequest,
) -> tuple[list[str] | None, OperationFilter | None]:
    """(operation ids, None) or (None, selector as a filter): exactly one of them."""
    if request.operation_ids and request.HasField("selector"):
        raise InvalidArgument("give operation_ids or selector, not both")
    if request.operation_ids:
        if len(request.operation_ids) > bulk.MAX_IDS:
            raise InvalidArgument(
                f"{len(request.operation_ids)} operation_ids given; at most {bulk.MAX_IDS}: send several requests, or a selector"
            )
        return [validation.operation_id(value) for value in request.operation_ids], None
    if not request.HasField("selector"):
        raise InvalidArgument(
            "give operation_ids, or a selector (states, workflow, labels, ...; an empty selector covers every operation)"
        )
    selector = request.selector
    where = operation_filter(selector)
    if selector.HasField("created_after"):
        where = replace(where, created_after=validation.timestamp("selector.created_after", selector.created_after))
    if selector.HasField("created_before"):
        where = replace(where, created_before=validation.timestamp("selector.created_before", selector.created_before))
    return None, where


async def authorize(engine: Engine, operation_id: str, steer: bool) -> None:
    """PERMISSION_DENIED unless the caller may read (or steer) this operation: its own, or any with reader (admin) rights."""
    principal = auth.current_principal()
    if principal.steers_all or (not steer and principal.sees_all):
        return
    auth.check_owner((await engine.get(operation_id)).requester, steer)


def list_filter(request: pb.ListOperationsRequest) -> OperationFilter:
    where = replace(operation_filter(request), stuck=request.stuck)
    if request.HasField("created_after"):
        where = replace(where, created_after=validation.timestamp("created_after", request.created_after))
    if request.HasField("created_before"):
        where = replace(where, created_before=validation.timestamp("created_before", request.created_before))
    return where


def bounded_page(found: list[Operation], full: bool) -> list[OperationParts]:
    """The operations in parts (convert.operation_parts), up to `list_page_bytes` of them (at least one)."""
    budget = limits.current.list_page_bytes
    page: list[OperationParts] = []
    for operation in found:
        parts = operation_parts(operation, full)
        page.append(parts)
        budget -= parts.size() + 8  # with the field's tag and length
        if budget < 0 and len(page) > 1:
            page.pop()
            break
    return page


async def list_page(engine: Engine, request: pb.ListOperationsRequest) -> tuple[list[OperationParts], str]:
    """One page of ListOperations, newest first (also serves the LRO service's ListOperations), and its
    next_page_token.

    The page ends early, with a next_page_token, before its operations grow past `list_page_bytes` (at least one
    operation per page; FULL pages read no more than that from the store either); BASIC (the default view) leaves
    input and result out, and does not read them.
    """
    limit = validation.page_size(request.page_size)
    full = validation.operation_view(request.view)
    before_id = validation.decode_page_token(request.page_token)
    found = await engine.list(list_filter(request), limit=limit + 1, before_id=before_id, values=full)
    # A FULL page's values are serialized in a thread when they are large (convert.heavy_all), off the event loop.
    shown = found[:limit]
    page = await off_loop_if(full and heavy_all(shown), lambda: bounded_page(shown, full))
    more = found.more or len(found) > len(page)
    return page, validation.encode_page_token(page[-1].header.id) if more and page else ""


def encoded_page(page: list[OperationParts], next_page_token: str, events_cursor: str) -> Encoded[pb.ListOperationsResponse]:
    """The ListOperations reply of a page, serialized (see encoded.py); its `message` leaves the operations out."""
    message = pb.ListOperationsResponse(next_page_token=next_page_token, events_cursor=events_cursor)
    return Encoded(message, encoded.message_with(message, [("operations", parts.serialized()) for parts in page]))


class OperationService(operation_pb2_grpc.OperationServiceServicer):
    def __init__(self, engine: Engine, watching: Watching) -> None:
        self.engine = engine
        self.watching = watching

    @rpc
    async def StartOperation(
        self, request: pb.StartOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartOperationResponse | Encoded[pb.StartOperationResponse]:
        if not request.workflow:
            raise InvalidArgument("workflow is required: name a registered workflow (see ListWorkflows / `pausable workflows`)")
        workflow = await self.engine.workflow(request.workflow)
        input_json, input_data = await validation.workflow_input_off_loop(
            workflow.name, request.input if request.HasField("input") else None, workflow.input_schema
        )
        operation, _created = await self.engine.start(
            workflow.name,
            input_json,
            input_data=input_data,
            request_id=validation.short_text("request_id", request.request_id),
            requester=auth.requester_for(validation.short_text("requester", request.requester)),
            labels=validation.labels(dict(request.labels)),
            workflow=workflow,
            deadline_seconds=validation.duration("deadline", request.deadline) if request.HasField("deadline") else None,
        )
        return await reply(operation, pb.StartOperationResponse)

    @rpc
    async def GetOperation(
        self, request: pb.GetOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOperationResponse | Encoded[pb.GetOperationResponse]:
        operation_id = validation.operation_id(request.operation_id)
        if request.step_view not in pb.StepView.values():
            raise InvalidArgument(f"step_view {request.step_view} is not a StepView; send STEP_VIEW_BASIC or STEP_VIEW_FULL")
        operation = await self.engine.get(operation_id)
        auth.check_owner(operation.requester, steer=False)
        answer = await reply(operation, pb.GetOperationResponse)
        if request.step_view == pb.STEP_VIEW_UNSPECIFIED:
            return answer
        full = request.step_view == pb.STEP_VIEW_FULL
        records = await self.engine.step_history(operation_id, full)
        extra = pb.GetOperationResponse(forks=await self.engine.forks_of(operation_id))
        extra.steps.extend(await off_loop_if(full, lambda: [step_record_to_pb(record) for record in records]))
        if isinstance(answer, Encoded):  # protobuf's wire format: the fields of two messages, one after the other, merge
            return Encoded(answer.message, answer.data + extra.SerializeToString())
        answer.MergeFrom(extra)
        return answer

    @rpc
    async def ListOperations(
        self, request: pb.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> Encoded[pb.ListOperationsResponse]:
        events_cursor = await self.engine.newest_cursor()  # before the page: what follows it is after the page's read
        return encoded_page(*await list_page(self.engine, request), events_cursor)

    async def _command(
        self,
        kind: Command,
        operation_id: str,
        request_id: str,
        reason: str,
        new_input: NewInput | None = None,
        before_step: int = 0,
        pause_timeout: tuple[float, timers.OnTimeout] | None = None,
    ) -> Operation:
        operation_id = validation.operation_id(operation_id)
        if before_step < 0:
            raise InvalidArgument(
                f"before_step {before_step} is negative: send a step number from 1 (its steps are counted from 1), "
                "or 0 to pause at the next step boundary"
            )
        await authorize(self.engine, operation_id, steer=True)
        request_id = validation.short_text("request_id", request_id)
        return await self.engine.command(
            kind,
            operation_id,
            request_id,
            reason=validation.reason(reason),
            new_input=new_input,
            before_step=before_step,
            pause_timeout=pause_timeout,
        )

    @rpc
    async def Pause(
        self, request: pb.PauseRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseResponse | Encoded[pb.PauseResponse]:
        operation = await self._command(
            Command.PAUSE,
            request.operation_id,
            request.request_id,
            request.reason,
            before_step=request.before_step,
            pause_timeout=pause_timeout(request),
        )
        return await reply(operation, pb.PauseResponse)

    @rpc
    async def Resume(
        self, request: pb.ResumeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeResponse | Encoded[pb.ResumeResponse]:
        given = validation.new_input("input", request.input if request.HasField("input") else None, request.input_json)
        new_input = None
        if given is not None:
            data = given[1]
            new_input = NewInput(given[0], lambda number, name, schema: validation.step_input(data, number, name, schema))
        operation = await self._command(Command.RESUME, request.operation_id, request.request_id, request.reason, new_input)
        return await reply(operation, pb.ResumeResponse)

    @rpc
    async def Retry(
        self, request: pb.RetryRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryResponse | Encoded[pb.RetryResponse]:
        operation = await self._command(Command.RETRY, request.operation_id, request.request_id, request.reason)
        return await reply(operation, pb.RetryResponse)

    @rpc
    async def Fork(
        self, request: pb.ForkRequest, context: grpc.aio.ServicerContext
    ) -> pb.ForkResponse | Encoded[pb.ForkResponse]:
        operation_id = validation.operation_id(request.operation_id)
        if request.from_step < 1:
            raise InvalidArgument(f"from_step is {request.from_step}; send the 1-based step to start at (1 to total_steps)")
        given = validation.new_input("input", request.input if request.HasField("input") else None, request.input_json)
        await authorize(self.engine, operation_id, steer=True)
        operation = await self.engine.fork(
            operation_id,
            request.from_step,
            given,
            validation.step_input,
            request_id=validation.short_text("request_id", request.request_id),
            requester=auth.requester_for(""),
            labels=validation.labels(dict(request.labels)),
            reason=validation.reason(request.reason),
        )
        return await reply(operation, pb.ForkResponse)

    @rpc
    async def Cancel(
        self, request: pb.CancelRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelResponse | Encoded[pb.CancelResponse]:
        kind = Command.FORCE_CANCEL if request.force else Command.CANCEL
        operation = await self._command(kind, request.operation_id, request.request_id, request.reason)
        return await reply(operation, pb.CancelResponse)

    async def _bulk(
        self, kind: Command, request: pb.BulkPauseRequest | pb.BulkResumeRequest | pb.BulkCancelRequest
    ) -> pb.BulkAction:
        ids, selector = bulk_selection(request)
        action = await self.engine.bulk(
            kind,
            operation_ids=ids,
            selector=selector,
            request_id=validation.short_text("request_id", request.request_id),
            reason=validation.reason(request.reason),
        )
        return bulk_to_pb(action)

    @rpc
    async def BulkPause(self, request: pb.BulkPauseRequest, context: grpc.aio.ServicerContext) -> pb.BulkPauseResponse:
        return pb.BulkPauseResponse(bulk_action=await self._bulk(Command.PAUSE, request))

    @rpc
    async def BulkResume(self, request: pb.BulkResumeRequest, context: grpc.aio.ServicerContext) -> pb.BulkResumeResponse:
        return pb.BulkResumeResponse(bulk_action=await self._bulk(Command.RESUME, request))

    @rpc
    async def BulkCancel(self, request: pb.BulkCancelRequest, context: grpc.aio.ServicerContext) -> pb.BulkCancelResponse:
        return pb.BulkCancelResponse(bulk_action=await self._bulk(Command.CANCEL, request))

    async def _bulk_action(self, bulk_id: str) -> BulkAction:
        if not bulk_id:
            raise InvalidArgument("bulk_action_id is required: pass the id BulkPause, BulkResume or BulkCancel returned")
        if not validation.OPERATION_ID.match(bulk_id):
            raise InvalidArgument(f"bulk_action_id {bulk_id[:80]!r} is malformed: ids are 32 lowercase hex digits")
        action = await self.engine.get_bulk(bulk_id)
        auth.check_owner(action.requester, steer=False)
        return action

    @rpc
    async def GetBulkAction(
        self, request: pb.GetBulkActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBulkActionResponse:
        return pb.GetBulkActionResponse(bulk_action=bulk_to_pb(await self._bulk_action(request.bulk_action_id)))

    @rpc
    async def WatchBulkAction(self, request: pb.WatchBulkActionRequest, context: grpc.aio.ServicerContext) -> None:
        """The action, then again whenever its counts change (read from the store every BULK_POLL_SECONDS, so the
        progress a replica makes shows on every other); ends once it is DONE."""
        action = await self._bulk_action(request.bulk_action_id)
        last = None
        while True:
            seen = (action.state, action.done, action.skipped, action.failed, action.matched)
            if seen != last:
                await context.write(pb.WatchBulkActionResponse(bulk_action=bulk_to_pb(action)))
                last = seen
            if action.state == bulk.DONE:
                return
            await asyncio.sleep(BULK_POLL_SECONDS)
            action = await self.engine.get_bulk(action.id)

    @rpc
    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext) -> None:
        """Written with context.write, so the fan-out hot path has one generator between the hub and the socket."""
        operation_id = validation.operation_id(request.operation_id)
        if request.after_seq < 0:
            raise InvalidArgument("after_seq must be 0 or more: 0 replays the whole history")
        await authorize(self.engine, operation_id, steer=False)
        async for message in self.watching.follow(operation_id, request.after_seq):
            await context.write(message)

    @rpc
    async def WatchEvents(self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext) -> None:
        where = operation_filter(request)
        cursor = validation.event_cursor(request.after_cursor)
        async for message in self.watching.follow_all(where, cursor):
            await context.write(message)

    @rpc
    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkflowsResponse:
        workflows = []
        for workflow in await self.engine.workflows():
            message = pb.Workflow(
                name=workflow.name,
                description=workflow.description,
                steps=workflow.steps,
                plan_json=dumps(workflow.plan),
                max_attempts=workflow.max_attempts,
            )
            if workflow.registered_at is not None:
                message.register_time.FromDatetime(workflow.registered_at)
            if workflow.input_schema is not None:
                message.input_schema.CopyFrom(to_value(workflow.input_schema))
            workflows.append(message)
        return pb.ListWorkflowsResponse(workflows=workflows)
