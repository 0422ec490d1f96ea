"""WorkerService: what the checkpointing task base inside Celery workers calls; it validates and converts, the engine acts."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any, cast

import grpc

from pausable.jsonvalue import from_value
from pausable.server import limits, validation
from pausable.server.convert import state_to_pb
from pausable.server.dispatch import plan_for
from pausable.server.domain import DEFAULT_MAX_ATTEMPTS, NotFound, StepReport, Workflow
from pausable.server.engine import Engine
from pausable.server.errors import InvalidArgument, rpc
from pausable.server.states import Decision
from pausable.v1 import operation_pb2, worker_pb2_grpc
from pausable.v1 import worker_pb2 as pb


def _report(request: pb.CheckpointRequest, continued: bool) -> StepReport:
    """The report of a well-formed checkpoint; InvalidArgument otherwise. A result too large or too deep to store is a
    well-formed report of a failed step: see `_refused`."""
    return StepReport(
        validation.operation_id(request.operation_id),
        _step(request.step),
        request.result_json,
        validation.short_text("attempt_id", request.attempt_id),
        continued,
        _attempt(request.attempt),
    )


def _refused(report: StepReport) -> dict[str, Any] | None:
    """The error that fails the report's operation when its result cannot be stored (limits.result_problem), else None."""
    problem = limits.result_problem(report.result_json)
    if problem is None:
        return None
    code, message = problem
    return {"code": code, "message": message, "step": report.step, "step_name": ""}


async def _refusals(reports: list[StepReport]) -> list[dict[str, Any] | None]:
    """`_refused` of each report; in a thread when their results are large (over offload_json_bytes in all)."""
    if sum(len(report.result_json) for report in reports) > limits.current.offload_json_bytes:
        return await asyncio.to_thread(lambda: [_refused(report) for report in reports])
    return [_refused(report) for report in reports]


def _step(value: int) -> int:
    if value < 0:
        raise InvalidArgument(f"step {value} is negative: steps are numbered from 0")
    return value


def _attempt(value: int) -> int:
    if value < 0:
        raise InvalidArgument(f"attempt {value} is negative: send the pausable_attempt header of the step's message, or 0")
    return value


def _workflow(message: operation_pb2.Workflow) -> Workflow:
    if not message.name:
        raise InvalidArgument("every workflow needs a name")
    where = f"workflow {message.name[:200]!r}"
    if message.plan_json:
        plan = limits.parse_json(
            f"plan_json of {where}", message.plan_json, limits.current.max_workflow_bytes, "max_workflow_bytes"
        )
    else:
        plan = plan_for(list(message.steps))
    if not plan or not isinstance(plan, list) or not all(isinstance(s, dict) and isinstance(s.get("task"), str) for s in plan):
        raise InvalidArgument(
            f"workflow {message.name!r} needs steps: a JSON list of Celery signature dicts in plan_json, or task names in steps"
        )
    schema = from_value(message.input_schema) if message.HasField("input_schema") else None
    if schema is not None and not isinstance(schema, dict):
        raise InvalidArgument(f"input_schema of {message.name!r} must be a JSON Schema object")
    if schema is not None:
        limits.check_depth(f"input_schema of {where}", schema)
        limits.check_bytes(
            f"input_schema of {where}", message.input_schema.ByteSize(), limits.current.max_workflow_bytes, "max_workflow_bytes"
        )
        from pausable.server import schemas  # jsonschema and RE2: only workflows with an input schema need them

        schemas.check_schema(message.name, schema)
    if message.max_attempts < 0:
        raise InvalidArgument(
            f"max_attempts of {message.name!r} is {message.max_attempts}: send 1 or more, or 0 for the default (3)"
        )
    return Workflow(message.name, plan, message.description, schema, message.max_attempts or DEFAULT_MAX_ATTEMPTS)


class WorkerService(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @rpc
    async def RegisterWorkflows(
        self, request: pb.RegisterWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterWorkflowsResponse:
        workflows = [_workflow(message) for message in request.workflows]
        await self.engine.register(workflows, validation.short_text("worker", request.worker))
        return pb.RegisterWorkflowsResponse()

    @rpc
    async def Checkpoint(self, request: pb.CheckpointRequest, context: grpc.aio.ServicerContext) -> pb.CheckpointResponse:
        report = _report(request, request.continued)
        [error] = await _refusals([report])
        if error is not None:
            state = await self.engine.fail(report.operation_id, report.step, error, report.attempt)
            return pb.CheckpointResponse(decision=pb.DECISION_STOP, state=state_to_pb(state))
        [outcome] = await self.engine.checkpoints([report])
        if outcome is None:
            raise NotFound(report.operation_id)
        return pb.CheckpointResponse(
            decision=cast(pb.Decision, pb.Decision.Value(f"DECISION_{outcome.decision}")), state=state_to_pb(outcome.state)
        )

    @rpc
    async def ReportSteps(self, request: pb.ReportStepsRequest, context: grpc.aio.ServicerContext) -> pb.ReportStepsResponse:
        """Every step is checked before any is applied; then they are applied in order, as `continued`, in one transaction.

        An operation deleted meanwhile is skipped: nothing is waiting for its answer. A result too large or too deep
        to store fails its operation (RESULT_TOO_LARGE, RESULT_TOO_DEEP) after the reports before it are recorded.
        """
        reports = [_report(step, continued=True) for step in request.steps]
        refused: dict[str, tuple[int, StepReport, dict[str, Any]]] = {}  # operation -> its first report that fails it
        for index, (report, error) in enumerate(zip(reports, await _refusals(reports), strict=True)):
            if report.operation_id not in refused and error is not None:
                refused[report.operation_id] = (index, report, error)
        kept = [r for i, r in enumerate(reports) if r.operation_id not in refused or i < refused[r.operation_id][0]]
        outcomes = await self.engine.checkpoints(kept)
        for _index, report, error in refused.values():
            with contextlib.suppress(NotFound):
                await self.engine.fail(report.operation_id, report.step, error, report.attempt)
        return pb.ReportStepsResponse(
            recorded=sum(1 for outcome in outcomes if outcome is not None and outcome.decision is not Decision.STOP)
        )

    @rpc
    async def ReportProgress(
        self, request: pb.ReportProgressRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportProgressResponse:
        if not (math.isfinite(request.fraction) and 0.0 <= request.fraction <= 1.0):
            raise InvalidArgument(f"fraction {request.fraction} is out of range: report progress from 0.0 to 1.0")
        state = await self.engine.progress(
            validation.operation_id(request.operation_id),
            _step(request.step),
            request.fraction,
            request.message[:1000],
            _attempt(request.attempt),
        )
        return pb.ReportProgressResponse(state=state_to_pb(state))

    @rpc
    async def FailOperation(
        self, request: pb.FailOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.FailOperationResponse:
        error = request.error
        error_fields = {
            "code": error.code[:200] or "Error",
            "message": error.message[:4000],
            "step": request.step,
            "step_name": error.step_name[:200],
        }
        state = await self.engine.fail(
            validation.operation_id(request.operation_id), _step(request.step), error_fields, _attempt(request.attempt)
        )
        return pb.FailOperationResponse(state=state_to_pb(state))

    @rpc
    async def RenewLeases(self, request: pb.RenewLeasesRequest, context: grpc.aio.ServicerContext) -> pb.RenewLeasesResponse:
        held = [(validation.operation_id(s.operation_id), _step(s.step), _attempt(s.attempt)) for s in request.steps]
        if len(held) > 10_000:
            raise InvalidArgument(f"{len(held)} steps in one RenewLeases call; send at most 10000 per call")
        return pb.RenewLeasesResponse(renewed=await self.engine.renew_leases(held))
