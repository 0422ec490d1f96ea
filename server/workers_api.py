"""WorkerService: what the checkpointing task base inside Celery workers calls."""

from __future__ import annotations

import math

import grpc

from pausable.jsonvalue import from_value
from pausable.server import validation
from pausable.server.convert import state_to_pb
from pausable.server.dispatch import plan_for
from pausable.server.errors import InvalidArgument, unary
from pausable.server.flags import StopFlags
from pausable.server.states import Decision, State
from pausable.server.store import CheckpointResult, NotFound, StepReport, Store, WorkflowSpec
from pausable.v1 import worker_pb2 as pb
from pausable.v1 import worker_pb2_grpc


def _report(request: pb.CheckpointRequest, continued: bool) -> StepReport:
    """The report of a well-formed checkpoint; InvalidArgument otherwise."""
    validation.json_text("result_json", request.result_json)
    return StepReport(
        validation.operation_id(request.operation_id),
        _step(request.step),
        request.result_json,
        validation.short_text("attempt_id", request.attempt_id),
        continued,
    )


def _step(value: int) -> int:
    if value < 0:
        raise InvalidArgument(f"step {value} is negative: steps are numbered from 0")
    return value


class WorkerService(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, store: Store, flags: StopFlags) -> None:
        self.store = store
        self.flags = flags

    @unary
    async def RegisterWorkflows(
        self, request: pb.RegisterWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterWorkflowsResponse:
        specs = []
        for workflow in request.workflows:
            if not workflow.name:
                raise InvalidArgument("every workflow needs a name")
            plan = validation.json_text("plan_json", workflow.plan_json) if workflow.plan_json else plan_for(list(workflow.steps))
            if (
                not plan
                or not isinstance(plan, list)
                or not all(isinstance(s, dict) and isinstance(s.get("task"), str) for s in plan)
            ):
                raise InvalidArgument(
                    f"workflow {workflow.name!r} needs steps: a JSON list of Celery signature dicts in plan_json, or task names in steps"
                )
            schema = from_value(workflow.input_schema) if workflow.HasField("input_schema") else None
            if schema is not None and not isinstance(schema, dict):
                raise InvalidArgument(f"input_schema of {workflow.name!r} must be a JSON Schema object")
            specs.append(WorkflowSpec(workflow.name, plan, workflow.description, schema))
        await self.store.register_workflows(specs, validation.short_text("worker", request.worker))
        return pb.RegisterWorkflowsResponse()

    @unary
    async def Checkpoint(self, request: pb.CheckpointRequest, context: grpc.aio.ServicerContext) -> pb.CheckpointResponse:
        report = _report(request, request.continued)
        [outcome] = await self._record([report])
        if outcome is None:
            raise NotFound(report.operation_id)
        return pb.CheckpointResponse(decision=pb.Decision.Value(f"DECISION_{outcome.decision}"), state=state_to_pb(outcome.state))

    @unary
    async def ReportSteps(self, request: pb.ReportStepsRequest, context: grpc.aio.ServicerContext) -> pb.ReportStepsResponse:
        """Every step is checked before any is applied; then they are applied in order, as `continued`, in one transaction.

        An operation deleted meanwhile is skipped: nothing is waiting for its answer.
        """
        outcomes = await self._record([_report(step, continued=True) for step in request.steps])
        return pb.ReportStepsResponse(
            recorded=sum(1 for outcome in outcomes if outcome is not None and outcome.decision is not Decision.STOP)
        )

    async def _record(self, reports: list[StepReport]) -> list[CheckpointResult | None]:
        """Record the reports; then make the stop flags match, except for continued reports of running operations."""
        outcomes = await self.store.checkpoints(reports)
        for report, outcome in zip(reports, outcomes, strict=True):
            if outcome is not None and not (report.continued and outcome.state is State.RUNNING):
                await self.flags.follow(report.operation_id, outcome.state)
        return outcomes

    @unary
    async def ReportProgress(
        self, request: pb.ReportProgressRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportProgressResponse:
        if not (math.isfinite(request.fraction) and 0.0 <= request.fraction <= 1.0):
            raise InvalidArgument(f"fraction {request.fraction} is out of range: report progress from 0.0 to 1.0")
        state = await self.store.report_progress(
            validation.operation_id(request.operation_id), _step(request.step), request.fraction, request.message[:1000]
        )
        return pb.ReportProgressResponse(state=state_to_pb(state))

    @unary
    async def FailOperation(
        self, request: pb.FailOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.FailOperationResponse:
        error = request.error
        operation_id = validation.operation_id(request.operation_id)
        state = await self.store.fail(
            operation_id,
            _step(request.step),
            {
                "code": error.code[:200] or "Error",
                "message": error.message[:4000],
                "step": request.step,
                "step_name": error.step_name[:200],
            },
        )
        await self.flags.follow(operation_id, state)
        return pb.FailOperationResponse(state=state_to_pb(state))
