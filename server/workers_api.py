"""WorkerService: what the checkpointing task base inside Celery workers calls; it validates and converts, the engine acts."""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import replace
from typing import Any, cast

import grpc

from pausable.config import MAX_DETAILS_BYTES, MAX_TRACEBACK_CHARS
from pausable.headers import PLAN_OPTIONS
from pausable.jsonvalue import from_value
from pausable.server import limits, offload, stages, validation
from pausable.server.convert import state_to_pb
from pausable.server.dispatch import plan_for
from pausable.server.domain import DEFAULT_MAX_ATTEMPTS, HeldStep, NotDispatched, NotFound, StepReport, Workflow
from pausable.server.engine import Engine
from pausable.server.errors import InvalidArgument, rpc
from pausable.server.states import Decision
from pausable.v1 import operation_pb2, worker_pb2_grpc
from pausable.v1 import worker_pb2 as pb

log = logging.getLogger("pausable.server")


def _report(request: pb.CheckpointRequest, continued: bool, dropped: bool = False) -> StepReport:
    """The report of a well-formed checkpoint; InvalidArgument otherwise. A result too large or too deep to store is a
    well-formed report of a failed step: see `_refused`. `dropped`: a `next_not_started` report's worker dropped the
    next step without waiting for an answer (ReportSteps)."""
    before = (request.next_not_started or request.in_step) and not continued
    first = before and request.step == -1  # before the first step: there is no result to record
    if first and request.result_json:
        raise InvalidArgument("a checkpoint before the first step (step -1) carries no result_json: leave it empty")
    unstarted = first or (before and request.HasField("member"))  # a member that did not start has no result either
    return StepReport(
        validation.operation_id(request.operation_id),
        -1 if first else _step(request.step),
        "null" if unstarted else request.result_json,
        validation.short_text("attempt_id", request.attempt_id),
        continued,
        _attempt(request.attempt),
        validation.short_text("step_token", request.step_token),
        before,
        next_dropped=before and dropped and not request.in_step,
        in_step=request.in_step and not continued,
        details_json=_details(request.details_json) if request.in_step and not continued else None,
        member=_member(request.member) if request.HasField("member") else None,
    )


def _member(member: int) -> int:
    if not 0 <= member <= MAX_MEMBERS:
        raise InvalidArgument(f"member {member} is out of range: send the member's 0-based index in its stage")
    return member


def _details(text: str) -> str:
    """A step's checkpoint details: JSON text of at most MAX_DETAILS_BYTES ("" for none)."""
    if not text:
        return ""
    if len(text.encode()) > MAX_DETAILS_BYTES:
        raise InvalidArgument(
            f"step details are {len(text.encode())} bytes of JSON; at most {MAX_DETAILS_BYTES} are kept: "
            "save a position or a key to continue from, not the data itself"
        )
    limits.parse_json("details_json", text, MAX_DETAILS_BYTES, "MAX_DETAILS_BYTES")
    return text


def _checked(report: StepReport) -> tuple[StepReport, dict[str, Any] | None]:
    """The report with its result parsed, and the error that fails its operation when that result cannot be stored
    (limits.result_problem), else None."""
    problem, decoded = limits.decoded_result(report.result_json)
    if decoded is not None:
        return replace(report, result=decoded.data, result_finite=decoded.finite), None
    assert problem is not None
    code, message = problem
    return report, {"code": code, "message": message, "step": report.step, "step_name": ""}


async def _refusals(reports: list[StepReport]) -> list[tuple[StepReport, dict[str, Any] | None]]:
    """`_checked` of each report; in a thread when their results are large (over offload_json_bytes in all)."""
    large = offload.large(sum(len(report.result_json) for report in reports))
    return await offload.off_loop_if(large, lambda: [_checked(report) for report in reports])


def _step(value: int) -> int:
    if value < 0:
        raise InvalidArgument(f"step {value} is negative: steps are numbered from 0")
    return value


def _attempt(value: int) -> int:
    if value < 0:
        raise InvalidArgument(f"attempt {value} is negative: send the pausable_attempt header of the step's message, or 0")
    return value


MAX_PLAN_STEPS = 1000
MAX_TASK_NAME = 200  # the store's step name column
MAX_PRIORITY = 255
MAX_MEMBERS = 10_000_000  # a map stage's members: bounded by the list the previous step returned


def _workflow(message: operation_pb2.Workflow, default_max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Workflow:
    if not message.name:
        raise InvalidArgument("every workflow needs a name")
    validation.short_text("workflow name", message.name)
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
    _check_plan(message.name, plan)
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
            f"max_attempts of {message.name!r} is {message.max_attempts}: send 1 or more, or 0 for the daemon's default"
        )
    return Workflow(message.name, plan, message.description, schema, message.max_attempts or default_max_attempts)


def _check_plan(name: str, plan: list[dict[str, Any]]) -> None:
    """A plan's steps: bounded in number, named tasks, JSON args and kwargs, and only the options in PLAN_OPTIONS;
    a stage's members (stages.py) are checked the same way."""
    if len(plan) > MAX_PLAN_STEPS:
        raise InvalidArgument(f"workflow {name!r} has {len(plan)} steps; at most {MAX_PLAN_STEPS} are allowed")
    for index, entry in enumerate(plan):
        where = f"step {index} of workflow {name!r}"
        _check_entry(name, where, entry)
        if stages.is_stage(entry):
            _check_stage(name, where, entry[stages.STAGE])


def _check_stage(name: str, where: str, stage: Any) -> None:
    """A stage: a group's non-empty list of member chains, or a map's chain with `over` and `max_parallel`."""
    if not isinstance(stage, dict):
        raise InvalidArgument(f"{where}: stage must be a JSON object with members (a group) or each (a map)")
    if "members" in stage:
        chains = stage["members"]
        if not isinstance(chains, list) or not 0 < len(chains) <= MAX_PLAN_STEPS:
            raise InvalidArgument(f"{where}: a group stage needs 1 to {MAX_PLAN_STEPS} members")
    else:
        chains = [stage.get("each")]
        over = stage.get("over")
        if over is not None and not (isinstance(over, str) and 0 < len(over) <= validation.MAX_TEXT):
            raise InvalidArgument(f"{where}: a map stage's over must be a key name, or null to map over the result itself")
    parallel = stage.get("max_parallel", 0)
    if not (isinstance(parallel, int) and not isinstance(parallel, bool) and parallel >= 0):
        raise InvalidArgument(f"{where}: max_parallel must be an integer, 0 for no bound")
    for member, chain in enumerate(chains):
        if not isinstance(chain, list) or not 0 < len(chain) <= 2:
            raise InvalidArgument(f"{where}: member {member} must be a list of 1 or 2 signature dicts")
        for entry in chain:
            if not isinstance(entry, dict) or not isinstance(entry.get("task"), str) or stages.is_stage(entry):
                raise InvalidArgument(f"{where}: member {member} must be signature dicts (task names), not stages")
            _check_entry(name, f"{where}, member {member}", entry)


def _check_entry(name: str, where: str, entry: dict[str, Any]) -> None:
    task = entry["task"]
    if not task.strip() or len(task) > MAX_TASK_NAME:
        raise InvalidArgument(f"{where} has task name {task[:80]!r}: send a Celery task name of 1 to {MAX_TASK_NAME} characters")
    if not isinstance(entry.get("args") or [], list):
        raise InvalidArgument(f"{where}: args must be a JSON list")
    if not isinstance(entry.get("kwargs") or {}, dict):
        raise InvalidArgument(f"{where}: kwargs must be a JSON object")
    if not isinstance(entry.get("inserted", False), bool):
        raise InvalidArgument(f"{where}: inserted must be true or false (true: not one of the user's steps)")
    schema = entry.get("input_schema")
    if schema is not None:
        if not isinstance(schema, dict):
            raise InvalidArgument(f"{where}: input_schema must be a JSON Schema object")
        from pausable.server import schemas  # jsonschema and RE2: only plans with a step schema need them

        schemas.check_schema(name, schema)
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidArgument(f"{where}: options must be a JSON object")
    extra = sorted(set(options) - PLAN_OPTIONS)
    if extra:
        raise InvalidArgument(
            f"{where} carries the option {extra[0][:80]!r}, which a plan may not set; allowed options: "
            f"{', '.join(sorted(PLAN_OPTIONS))} (headers, task ids and the like are the daemon's)"
        )
    queue = options.get("queue")
    if queue is not None and not (isinstance(queue, str) and 0 < len(queue) <= validation.MAX_TEXT):
        raise InvalidArgument(f"{where}: option queue must be a queue name of 1 to {validation.MAX_TEXT} characters")
    priority = options.get("priority")
    if priority is not None and not (
        isinstance(priority, int) and not isinstance(priority, bool) and 0 <= priority <= MAX_PRIORITY
    ):
        raise InvalidArgument(f"{where}: option priority must be an integer from 0 to {MAX_PRIORITY}")


class WorkerService(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, engine: Engine, default_max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        self.engine = engine
        self.default_max_attempts = default_max_attempts

    @rpc
    async def RegisterWorkflows(
        self, request: pb.RegisterWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterWorkflowsResponse:
        workflows = [_workflow(message, self.default_max_attempts) for message in request.workflows]
        await self.engine.register(workflows, validation.short_text("worker", request.worker))
        return pb.RegisterWorkflowsResponse()

    @rpc
    async def Checkpoint(self, request: pb.CheckpointRequest, context: grpc.aio.ServicerContext) -> pb.CheckpointResponse:
        [(report, error)] = await _refusals([_report(request, request.continued)])
        if error is not None:
            state = await self.engine.fail(report.operation_id, report.step, error, report.attempt, report.step_token)
            return pb.CheckpointResponse(decision=pb.DECISION_STOP, state=state_to_pb(state))
        [outcome] = await self.engine.checkpoints([report])
        if outcome is None:
            raise NotFound(report.operation_id)
        if outcome.refused:
            raise NotDispatched(f"step {report.step} of operation {report.operation_id}")
        return pb.CheckpointResponse(
            decision=cast(pb.Decision, pb.Decision.Value(f"DECISION_{outcome.decision}")), state=state_to_pb(outcome.state)
        )

    @rpc
    async def ReportSteps(self, request: pb.ReportStepsRequest, context: grpc.aio.ServicerContext) -> pb.ReportStepsResponse:
        """Every step is checked before any is applied; then they are applied in order, in one transaction: as
        `continued`, or as the boundary before a step the worker dropped (`next_not_started`: the daemon decides, and
        sends that step again if the operation goes on).

        An operation deleted meanwhile is skipped: nothing is waiting for its answer. A step whose token is not
        its operation's current one changes nothing and is left out of `recorded` (the others still count: one
        worker's batch holds the reports of many operations). A result too large or too deep to store fails its
        operation (RESULT_TOO_LARGE, RESULT_TOO_DEEP) after the reports before it are recorded.
        """
        checked = await _refusals([_report(step, not step.next_not_started, dropped=True) for step in request.steps])
        reports = [report for report, _error in checked]
        refused: dict[str, tuple[int, StepReport, dict[str, Any]]] = {}  # operation -> its first report that fails it
        for index, (report, error) in enumerate(checked):
            if report.operation_id not in refused and error is not None:
                refused[report.operation_id] = (index, report, error)
        kept = [r for i, r in enumerate(reports) if r.operation_id not in refused or i < refused[r.operation_id][0]]
        outcomes = await self.engine.checkpoints(kept)
        for _index, report, error in refused.values():
            with contextlib.suppress(NotFound, NotDispatched):
                await self.engine.fail(report.operation_id, report.step, error, report.attempt, report.step_token)
        denied = sum(1 for outcome in outcomes if outcome is not None and outcome.refused)
        if denied:
            log.warning("ReportSteps: %d of %d steps refused, their step tokens are not the current ones", denied, len(outcomes))
        return pb.ReportStepsResponse(
            recorded=sum(
                1 for outcome in outcomes if outcome is not None and not outcome.refused and outcome.decision is not Decision.STOP
            )
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
            validation.short_text("step_token", request.step_token),
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
        if error.traceback:
            error_fields["traceback"] = error.traceback[-MAX_TRACEBACK_CHARS:]
        if request.HasField("member"):
            error_fields["member_index"] = _member(request.member)
        state = await self.engine.fail(
            validation.operation_id(request.operation_id),
            _step(request.step),
            error_fields,
            _attempt(request.attempt),
            validation.short_text("step_token", request.step_token),
        )
        return pb.FailOperationResponse(state=state_to_pb(state))

    @rpc
    async def RenewLeases(self, request: pb.RenewLeasesRequest, context: grpc.aio.ServicerContext) -> pb.RenewLeasesResponse:
        if len(request.steps) > 10_000:
            raise InvalidArgument(f"{len(request.steps)} steps in one RenewLeases call; send at most 10000 per call")
        held = [
            HeldStep(
                validation.operation_id(s.operation_id),
                _step(s.step),
                _attempt(s.attempt),
                validation.short_text("step_token", s.step_token),
                _member(s.member) if s.HasField("member") else None,
            )
            for s in request.steps
        ]
        return pb.RenewLeasesResponse(renewed=await self.engine.renew_leases(held))

    @rpc
    async def SaveStepDetails(
        self, request: pb.SaveStepDetailsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SaveStepDetailsResponse:
        if not request.details_json:
            raise InvalidArgument("details_json is empty: send the step's details as JSON text (null for none)")
        state = await self.engine.save_details(
            validation.operation_id(request.operation_id),
            _step(request.step),
            _attempt(request.attempt),
            validation.short_text("step_token", request.step_token),
            _details(request.details_json),
        )
        return pb.SaveStepDetailsResponse(state=state_to_pb(state))

    @rpc
    async def GetStepDetails(
        self, request: pb.GetStepDetailsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStepDetailsResponse:
        details = await self.engine.step_details(
            validation.operation_id(request.operation_id),
            _step(request.step),
            validation.short_text("step_token", request.step_token),
        )
        return pb.GetStepDetailsResponse(found=details is not None, details_json=details or "")
