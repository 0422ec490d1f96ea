"""The standard `google.longrunning.Operations` service over pausable operations.

Generic LRO tooling (gapic clients, `google.api_core.operation`) can follow a
pausable run without knowing pausable.v1. Every call goes through the
engine and the same validation as OperationService, so the state machine
and the errors stay in one place. The mapping:

- `name` is `operations/<id>`, the id StartOperation returned.
- `metadata` packs the `pausable.v1.Operation` (state, step i of n, progress).
- `done` is true once the operation is SUCCEEDED, FAILED or CANCELLED.
- `response` packs a `google.protobuf.Value` with the result when SUCCEEDED.
- `error` is a `google.rpc.Status` otherwise: CANCELLED (1) for CANCELLED;
  for FAILED, UNAVAILABLE (14) when the broker refused the chain and UNKNOWN (2)
  when a step raised, the message naming the step, and `details` packing the
  `pausable.v1.OperationError`.

ListOperations takes `name` "operations" or empty, and a `filter` of terms
separated by spaces or ` AND `, all of which must hold:
`state=RUNNING` (several states: `state=RUNNING,PAUSED`), `workflow=demo.etl`,
`done=true` / `done=false`. Pages come newest first, as in OperationService.

CancelOperation asks pausable to cancel: at once when PAUSED or PENDING,
otherwise at the next step boundary (poll or WaitOperation until done).
WaitOperation returns the operation once it is done, or as it stands when
`timeout` (or, a little before, the call's deadline) runs out; without either
it waits until done. DeleteOperation removes a finished operation and its
history; one that has not finished is FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

import grpc
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as lro
from google.protobuf import any_pb2, empty_pb2, struct_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2

from pausable.server import auth, states
from pausable.server.convert import OperationParts, converted, state_to_pb
from pausable.server.domain import Operation
from pausable.server.engine import Engine
from pausable.server.errors import InvalidArgument, rpc
from pausable.server.operations import authorize, list_page
from pausable.server.states import Command
from pausable.server.validation import OPERATION_ID
from pausable.server.watching import Watching
from pausable.v1 import operation_pb2 as pb

SERVICE_NAME = lro.DESCRIPTOR.services_by_name["Operations"].full_name
PREFIX = "operations/"
COLLECTIONS = ("", "operations")
TERMINAL = frozenset(state_to_pb(state) for state in states.TERMINAL)
BROKER_FAILURE = "BROKER_UNAVAILABLE"
# How long before the caller's deadline WaitOperation answers, so the caller
# gets the operation rather than DEADLINE_EXCEEDED.
DEADLINE_MARGIN = 0.1


def operation_id(name: str) -> str:
    """The pausable id inside an LRO name, or InvalidArgument saying what to send."""
    if not name:
        raise InvalidArgument("name is required: send operations/<id> with the id StartOperation returned")
    id_ = name.removeprefix(PREFIX)
    if id_ == name or not OPERATION_ID.match(id_):
        raise InvalidArgument(
            f"name {name[:80]!r} is malformed: send operations/<id>, the id being the 32 lowercase hex digits "
            "StartOperation returned"
        )
    return id_


def to_lro(operation: OperationParts, basic_metadata: bool = False) -> lro.Operation:
    """`basic_metadata` (ListOperations): the metadata leaves out input and result (the result is the response)."""
    message = lro.Operation()
    lro_into(message, operation, basic_metadata)
    return message


def lro_into(message: lro.Operation, operation: OperationParts, basic_metadata: bool = False) -> None:
    """Fill `message` (empty, a list reply's item say) in place: see to_lro. The packed messages are made from the
    operation's parts (convert.OperationParts): serializing an operation holding a 1 MiB input and result is one C
    call holding the GIL, so the event loop, for 5-10 ms."""
    header = operation.header
    message.name, message.done = PREFIX + header.id, header.state in TERMINAL
    if basic_metadata:
        pack(message.metadata, header, header.SerializeToString())
    else:
        pack(message.metadata, header, operation.serialized())
    if header.state == pb.OPERATION_STATE_SUCCEEDED:
        result = operation.values.get("result")
        if result is None:
            result = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE).SerializeToString()
        pack(message.response, struct_pb2.Value(), result)
    elif header.state == pb.OPERATION_STATE_CANCELLED:
        message.error.MergeFrom(status_pb2.Status(code=code_pb2.CANCELLED, message=f"operation {header.id} was cancelled"))
    elif header.state == pb.OPERATION_STATE_FAILED:
        message.error.MergeFrom(failure_status(header))


def pack(target: any_pb2.Any, message: Message, serialized: bytes) -> None:
    """`target.Pack(message)`, with `serialized` what the message would serialize to."""
    target.type_url = f"type.googleapis.com/{message.DESCRIPTOR.full_name}"
    target.value = serialized


def lro_page(page: list[OperationParts], next_page_token: str) -> lro.ListOperationsResponse:
    """The LRO reply of a pausable.v1 page, built in place."""
    reply = lro.ListOperationsResponse(next_page_token=next_page_token)
    for operation in page:
        lro_into(reply.operations.add(), operation, basic_metadata=True)
    return reply


def failure_status(operation: pb.Operation) -> status_pb2.Status:
    error = operation.error
    code = code_pb2.UNAVAILABLE if error.code == BROKER_FAILURE else code_pb2.UNKNOWN
    member = f" member {error.member_index + 1} of" if error.HasField("member_index") else ""
    where = (
        f" in{member} step {error.step_number or error.step + 1}/{operation.total_steps} {error.step_name}".rstrip()
        if error.step >= 0
        else ""
    )
    detail = any_pb2.Any()
    detail.Pack(error)
    return status_pb2.Status(code=code, message=f"{error.code or 'Error'}{where}: {error.message}", details=[detail])


def parse_filter(text: str) -> pb.ListOperationsRequest:
    """The states and workflow a ListOperations filter asks for (see the module docstring)."""
    request = pb.ListOperationsRequest()
    states: set[int] | None = None
    for term in text.replace(" AND ", " ").split():
        key, sep, value = term.partition("=")
        key = key.strip().lower()
        if not sep or not value:
            raise InvalidArgument(f"filter term {term[:80]!r} is not key=value: {filter_help()}")
        if key == "workflow":
            if request.workflow and request.workflow != value:
                raise InvalidArgument("filter names two workflows; name one, or leave workflow out for all")
            request.workflow = value
        elif key == "state":
            states = _narrow(states, {_state(name) for name in value.split(",")})
        elif key == "done":
            if value.lower() not in ("true", "false"):
                raise InvalidArgument(f"filter term {term[:80]!r}: done takes true or false")
            wanted = TERMINAL if value.lower() == "true" else set(pb.OperationState.values()) - TERMINAL - {0}
            states = _narrow(states, set(wanted))
        else:
            raise InvalidArgument(f"filter key {key[:40]!r} is not supported: {filter_help()}")
    if states is not None:
        if not states:
            raise InvalidArgument(f"filter {text[:120]!r} can match no state: {filter_help()}")
        request.states.extend(cast("list[pb.OperationState]", sorted(states)))
    return request


def _narrow(states: set[int] | None, more: set[int]) -> set[int]:
    return more if states is None else states & more


def _state(name: str) -> int:
    key = name.strip().upper().removeprefix("OPERATION_STATE_")
    try:
        value = pb.OperationState.Value(f"OPERATION_STATE_{key}")
    except ValueError:
        value = 0
    if value == 0:
        known = ", ".join(n.removeprefix("OPERATION_STATE_") for n in pb.OperationState.keys()[1:])
        raise InvalidArgument(f"filter state {name[:40]!r} is unknown: use one of {known}")
    return value


def filter_help() -> str:
    return "use terms like state=RUNNING, state=RUNNING,PAUSED, workflow=demo.etl or done=true, separated by spaces or AND"


class LongRunningService(operations_pb2_grpc.OperationsServicer):
    def __init__(self, engine: Engine, watching: Watching) -> None:
        self.engine = engine
        self.watching = watching

    async def _get(self, id_: str) -> Operation:
        operation = await self.engine.get(id_)
        auth.check_owner(operation.requester, steer=False)
        return operation

    @rpc
    async def GetOperation(self, request: lro.GetOperationRequest, context: grpc.aio.ServicerContext) -> lro.Operation:
        return await converted(await self._get(operation_id(request.name)), to_lro)

    @rpc
    async def ListOperations(
        self, request: lro.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> lro.ListOperationsResponse:
        if request.name not in COLLECTIONS:
            raise InvalidArgument(f'name {request.name[:80]!r} is not a collection here: send "operations" or leave it empty')
        query = parse_filter(request.filter)
        query.page_size = request.page_size
        query.page_token = request.page_token
        query.view = pb.OPERATION_VIEW_FULL  # the result of a SUCCEEDED operation is its response
        return lro_page(*await list_page(self.engine, query))

    @rpc
    async def CancelOperation(self, request: lro.CancelOperationRequest, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        id_ = operation_id(request.name)
        await authorize(self.engine, id_, steer=True)
        await self.engine.command(Command.CANCEL, id_)
        return empty_pb2.Empty()

    @rpc
    async def DeleteOperation(self, request: lro.DeleteOperationRequest, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        await self.engine.delete(operation_id(request.name))
        return empty_pb2.Empty()

    @rpc
    async def WaitOperation(self, request: lro.WaitOperationRequest, context: grpc.aio.ServicerContext) -> lro.Operation:
        id_ = operation_id(request.name)
        limit = self._wait_limit(request, context)
        current = await self._get(id_)
        if current.terminal or (limit is not None and limit <= 0):
            return await converted(current, to_lro)
        # Watch replays from the store after last_seq, then follows the hub, and
        # ends after the terminal event: nothing can slip between the read above
        # and the wait, and no polling is needed.
        watch = self.watching.follow(id_, current.last_seq)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit), contextlib.aclosing(watch):
                async for _ in watch:
                    pass
        return await converted(await self._get(id_), to_lro)

    @staticmethod
    def _wait_limit(request: lro.WaitOperationRequest, context: grpc.aio.ServicerContext) -> float | None:
        """Seconds to wait: the request's timeout or the call's deadline, the shorter; None for no limit."""
        limit: float | None = None
        if request.HasField("timeout"):
            if request.timeout.seconds < 0 or request.timeout.nanos < 0:
                raise InvalidArgument("timeout must not be negative: send how long to wait, or leave it unset to wait until done")
            limit = request.timeout.ToTimedelta().total_seconds()
        remaining = context.time_remaining()
        if remaining is not None:
            limit = min(limit if limit is not None else remaining, remaining - DEADLINE_MARGIN)
        return limit
