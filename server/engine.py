"""The engine: every command on operations, sequenced in one place.

The gRPC servicers, the LRO service and any other front end convert and
validate, then call one method here. Each command is the same sequence:

1. one store transaction decides (states.py) and records the change, its
   events and, when steps must run, their chain in the outbox;
2. the chain is published to the broker; the outbox entry is then marked
   sent (in batches). A publish that fails, or a daemon that dies before
   it, leaves the entry: any replica's outbox sweep publishes it again;
3. the stop flags are made to match the new state (a hint for workers;
   the store decides);
4. the committed events reach watchers through the hub (the store's
   on_commit).

Two background loops keep the guarantees: the outbox sweep (above), and
the lease sweep: a RUNNING operation's current step is leased to the
workers, renewed by their heartbeats and by every report; when a lease
lapses and the broker does not hold the step's message, the step runs
again with the next attempt, or the operation fails with WORKER_LOST after
its workflow's max_attempts; a requested pause or cancel then takes effect.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pausable import tracing
from pausable.server import auth, bulk, domain, jsontext, stages, states, timers, validation
from pausable.server.dispatch import Dispatcher
from pausable.server.domain import (
    UNPARSED,
    BulkAction,
    CheckpointResult,
    Dispatch,
    HeldStep,
    Operation,
    OperationFilter,
    StepReport,
    UnknownWorkflow,
    Workflow,
)
from pausable.server.flags import StopFlags
from pausable.server.offload import large, off_loop_if
from pausable.server.queued import BrokerProbe, Whereabouts
from pausable.server.states import Command, Decision, LeaseVerdict, State
from pausable.server.store import Change, Fork, NewInput, Store

log = logging.getLogger("pausable.server")
SWEEP_BATCH = 100
FAULT_VARIABLE = "PAUSABLE_TEST_FAULT"


def request_hash(workflow: str, input_json: str, labels: dict[str, str]) -> str:
    """What a repeated request_id must repeat: the workflow, the input and the labels."""
    data, finite = jsontext.decode(input_json)
    canonical = jsontext.compact([workflow, data, sorted(labels.items())], finite, ensure_ascii=True, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def request_hash_of(workflow: str, input_json: str, labels: dict[str, str]) -> str:
    """`request_hash`, in a thread for an input over offload_json_bytes (1 MiB: about 40 ms of JSON on 2 cores)."""
    return await off_loop_if(large(len(input_json)), lambda: request_hash(workflow, input_json, labels))


@dataclass(frozen=True)
class Timing:
    """The durability clocks (settings: step_lease_seconds, outbox_grace_seconds)."""

    lease_seconds: float = 60.0
    outbox_grace_seconds: float = 10.0

    @property
    def sweep_seconds(self) -> float:
        return max(0.2, min(self.lease_seconds, self.outbox_grace_seconds) / 4)


class Engine:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        flags: StopFlags,
        probe: BrokerProbe,
        timing: Timing | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        """`on_decision` hears the decision on each worker report recorded or answered (the checkpoints metric)."""
        self.store = store
        self.on_decision = on_decision
        self.dispatcher = dispatcher
        self.flags = flags
        self.probe = probe
        self.timing = timing or Timing()
        store.lease = timedelta(seconds=self.timing.lease_seconds)
        self._sent: list[int] = []
        # Fault injection for tests/faults only: die in the window between the commit and the publish.
        self.crash_before_publish = os.environ.get(FAULT_VARIABLE) == "crash-before-publish"
        self._marking: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()  # Cancel(force=true) broadcasts, member announcements
        self._bulks: dict[str, asyncio.Task[None]] = {}  # bulk actions this replica is processing
        self._announcing: set[str] = set()  # operations whose finished members are to be named in an event soon

    # -- client commands -----------------------------------------------------

    async def start(
        self,
        workflow_name: str,
        input_json: str,
        *,
        request_id: str,
        requester: str,
        labels: dict[str, str],
        workflow: Workflow | None = None,
        input_data: Any = UNPARSED,
        deadline_seconds: float | None = None,
    ) -> tuple[Operation, bool]:
        """Create and dispatch an operation; (operation, created). A repeated request_id returns the first one.
        `input_data`: input_json parsed, when the caller has it (see Store.create_operation)."""
        workflow = workflow or await self.workflow(workflow_name)
        change = await self.store.create_operation(
            workflow,
            input_json=input_json,
            input_data=input_data,
            request_id=request_id,
            requester=requester,
            labels=labels,
            headers=tracing.headers(),
            request_hash=await request_hash_of(workflow.name, input_json, labels) if request_id else None,
            actor=auth.actor() if auth.current_principal().authenticated else requester or auth.actor(),
            deadline_seconds=deadline_seconds,
        )
        await self._publish(change)
        return change.operation, not change.replayed

    async def workflow(self, name: str) -> Workflow:
        found = await self.store.get_workflow(name)
        if found is None:
            known = ", ".join(w.name for w in await self.store.list_workflows()) or "none yet"
            raise UnknownWorkflow(
                f"unknown workflow {name!r}; registered workflows: {known}. "
                "A workflow is registered when a worker that defines it starts (`pausable worker`)."
            )
        return found

    async def command(
        self,
        kind: Command,
        operation_id: str,
        request_id: str = "",
        *,
        reason: str = "",
        new_input: NewInput | None = None,
        before_step: int = 0,
        pause_timeout: tuple[float, timers.OnTimeout] | None = None,
    ) -> Operation:
        """Pause, resume, cancel or retry; a resume of a PAUSED operation (or a retry) dispatches the rest of its plan.
        `reason`: the caller's note of why, recorded on the event(s) the command appends. `new_input` (resume only):
        the value the next step receives instead of the stored last result. `before_step` (PAUSE): a breakpoint.
        `pause_timeout`: see Store.command.

        FORCE_CANCEL ends an active operation at once; its stop flag stays up (a step of it still queued drops
        itself as it starts, a cooperative step stops at its next stop_requested()) and the workers are told to
        terminate the step of it they run (`Dispatcher.terminate`; best effort: the store has decided)."""
        change = await self.store.command(
            operation_id,
            kind,
            auth.scoped_request_id(request_id),
            tracing.headers(),
            actor=auth.actor(),
            reason=reason,
            new_input=new_input,
            before_step=before_step,
            pause_timeout=pause_timeout,
        )
        if kind is Command.FORCE_CANCEL and change.operation.state is State.CANCELLED:
            await self.flags.hold(operation_id)
            # Not awaited: the store has decided, and a broker that does not answer must not hold the reply.
            self._in_background(self._terminate(operation_id), "pausable-terminate")
        else:
            await self.flags.follow(operation_id, change.operation.state, change.operation.attempt, ask=change.ask)
        await self._publish(change)
        return change.operation

    async def fork(
        self,
        operation_id: str,
        from_step: int,
        given: tuple[str, Any] | None,
        check: Callable[[Any, int, str, dict[str, Any] | None], None],
        *,
        request_id: str,
        requester: str,
        labels: dict[str, str],
        reason: str = "",
    ) -> Operation:
        """A new operation of the parent's workflow and plan, starting at the user's step `from_step`, fed `given`
        (JSON text and data, checked by `check` against the step's input schema) or else the value the parent's step
        received (its input for step 1). A repeated request_id returns the first fork."""
        parent, plan, start, recorded = await self.store.fork_source(operation_id, from_step)
        registered = await self.workflow(parent.workflow)
        numbering = states.Numbering.of(plan)
        if given is not None:
            check(given[1], from_step, numbering.name(start), plan[start].get("input_schema"))
            if start == 0:
                check(given[1], from_step, numbering.name(start), registered.input_schema)
        elif start > 0 and recorded is None:
            raise states.InvalidTransition(
                f"operation {operation_id} has no recorded result before step {from_step}: it never got that far (or ran "
                "before the daemon kept every step's result); fork from an earlier step, or give the input"
            )
        if start == 0:
            input_json, value = (given[0] if given is not None else parent.input_json or "null"), None
        else:
            input_json, value = parent.input_json or "null", given[0] if given is not None else recorded
        labels = validation.labels({**parent.labels, **labels})  # the parent's and the given ones: still bounded
        fork = Fork(operation_id, from_step, start, value, reason)
        workflow = replace(registered, plan=plan)
        change = await self.store.create_operation(
            workflow,
            input_json=input_json,
            request_id=request_id,
            requester=requester,
            labels=labels,
            headers=tracing.headers(),
            request_hash=await request_hash_of(f"{workflow.name} fork {operation_id} {from_step}", value or input_json, labels)
            if request_id
            else None,
            actor=auth.actor(),
            fork=fork,
        )
        await self._publish(change)
        return change.operation

    async def step_history(self, operation_id: str, with_results: bool) -> builtins.list[domain.StepRecord]:
        return await self.store.step_history(operation_id, with_results)

    async def forks_of(self, operation_id: str) -> builtins.list[str]:
        return await self.store.forks_of(operation_id)

    async def _terminate(self, operation_id: str) -> None:
        try:
            await self.dispatcher.terminate(operation_id)
        except Exception as error:  # noqa: BLE001 - the broker is away: the step runs on, its reports change nothing
            log.warning("could not ask the workers to terminate the step of %s: %s", operation_id, error)

    async def save_details(self, operation_id: str, step: int, attempt: int, step_token: str, details_json: str) -> State:
        return await self.store.save_details(operation_id, step, attempt, step_token, details_json)

    async def step_details(self, operation_id: str, step: int, step_token: str) -> str | None:
        return await self.store.step_details(operation_id, step, step_token)

    async def bulk(
        self,
        kind: Command,
        *,
        operation_ids: Sequence[str] | None,
        selector: OperationFilter | None,
        request_id: str,
        reason: str,
    ) -> BulkAction:
        """Record a bulk action and start processing it on this replica (any replica's sweep goes on with it if this
        one stops). An operator without admin rights steers only its own operations (auth.owner_filter)."""
        principal = auth.current_principal()
        owner = "" if principal.steers_all else principal.name
        action, created = await self.store.create_bulk(
            kind,
            operation_ids=operation_ids,
            selector=None if selector is None else bulk.selector_json(selector),
            request_id=request_id,
            requester=principal.name if principal.authenticated else "",
            actor=auth.actor(),
            reason=reason,
            owner=owner,
        )
        if created:
            self._drive(action.id)
        return action

    async def get_bulk(self, bulk_id: str) -> BulkAction:
        return await self.store.get_bulk(bulk_id)

    async def get(self, operation_id: str) -> Operation:
        return await self.store.get_operation(operation_id)

    async def list(
        self, where: OperationFilter, *, limit: int, before_id: str | None, values: bool = True
    ) -> domain.Page[Operation]:
        return await self.store.list_operations(where, limit=limit, before_id=before_id, values=values)

    async def newest_cursor(self) -> str:
        """The WatchEvents cursor of the newest event (Reads.newest_cursor): what a watcher starting now goes on from."""
        return await self.store.newest_cursor()

    async def workflows(self) -> builtins.list[Workflow]:
        return await self.store.list_workflows()

    async def delete(self, operation_id: str) -> None:
        await self.store.delete_finished(operation_id)

    # -- worker reports ------------------------------------------------------

    async def register(self, workflows: Sequence[Workflow], worker: str) -> None:
        await self.store.register_workflows(workflows, worker)

    async def checkpoints(self, reports: Sequence[StepReport]) -> builtins.list[CheckpointResult | None]:
        """Record the reports; then make the stop flags match, except for continued reports of running operations.
        Stage members recorded but not yet named in an event are named in one `stages.ANNOUNCE_SECONDS` later."""
        outcomes = await self.store.checkpoints(reports)
        for report, outcome in zip(reports, outcomes, strict=True):
            if outcome is None or outcome.refused:
                continue
            if self.on_decision is not None:
                self.on_decision(outcome.decision)
            if outcome.ask or not (report.continued and outcome.state is State.RUNNING and outcome.attempt == 1):
                await self.flags.follow(report.operation_id, outcome.state, outcome.attempt, ask=outcome.ask)
            if outcome.resend is not None and outcome.outbox is not None:
                await self._send(outcome.resend, outcome.outbox)
            if outcome.unannounced and report.operation_id not in self._announcing:
                self._announcing.add(report.operation_id)
                asyncio.get_running_loop().call_later(stages.ANNOUNCE_SECONDS, self._announce, report.operation_id)
        return outcomes

    def _announce(self, operation_id: str) -> None:
        """Name in an event the members recorded since the last MEMBER_COMPLETED (best effort: a later report, the
        join or a stop names them too)."""
        self._announcing.discard(operation_id)

        async def announce() -> None:
            try:
                await self.store.announce_members(operation_id)
            except Exception as error:  # noqa: BLE001 - the store is away: the next report or the join names them
                log.info("could not announce the members of %s yet: %s", operation_id, error)

        self._in_background(announce(), "pausable-announce-members")

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` without waiting for it (the store has decided; the broker or the store may be slow to answer)."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def progress(
        self, operation_id: str, step: int, fraction: float, message: str, attempt: int = 0, step_token: str = ""
    ) -> State:
        return await self.store.report_progress(operation_id, step, fraction, message, attempt, step_token)

    async def fail(self, operation_id: str, step: int, error: dict[str, Any], attempt: int = 0, step_token: str = "") -> State:
        state = await self.store.fail(operation_id, step, error, attempt, step_token)
        if "member_index" in error and state is State.FAILED:
            # The stage's other members stop: queued ones drop themselves as they start, running ones are terminated
            # as by Cancel(force=true) (their results would change nothing; Retry runs them again).
            await self.flags.hold(operation_id)
            self._in_background(self._terminate(operation_id), "pausable-terminate")
        else:
            await self.flags.follow(operation_id, state)
        return state

    async def renew_leases(self, held: Sequence[HeldStep]) -> int:
        return await self.store.renew_leases(held)

    # -- dispatch --------------------------------------------------------------

    async def _publish(self, change: Change) -> None:
        if change.outbox is not None and change.dispatch is not None:
            await self._send(change.dispatch, change.outbox)

    async def _send(self, dispatch: Dispatch, outbox_id: int) -> None:
        """Send a committed chain; on failure it stays in the outbox for the sweep."""
        if self.crash_before_publish:
            log.critical("fault injection: exiting between the commit and the publish of %s", dispatch.operation_id)
            os._exit(70)
        try:
            await self.dispatcher.publish(dispatch)
        except Exception as error:  # noqa: BLE001 - any broker failure: the outbox keeps the chain
            log.warning("publishing the chain of %s failed, the outbox sweep sends it again: %s", dispatch.operation_id, error)
            return
        self._mark_sent(outbox_id)

    def _mark_sent(self, outbox_id: int) -> None:
        """Forget sent outbox entries in batches: one write for every chain published meanwhile. On SQLite they join
        the writer's next transaction; on Postgres a write of their own."""
        if self.store.sqlite is not None:
            self.store.sent_soon(outbox_id)
            return
        self._sent.append(outbox_id)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._forget_sent(), name="pausable-outbox-sent")

    async def _forget_sent(self) -> None:
        while self._sent:
            batch, self._sent = self._sent, []
            try:
                await self.store.sent(batch)
            except Exception as error:  # noqa: BLE001 - the sweep would send them again: harmless, their reports dedupe
                log.warning("could not mark %d outbox entries sent: %s", len(batch), error)

    # -- background sweeps -----------------------------------------------------

    async def run_sweeps(self) -> None:
        """The outbox and lease sweeps, every `timing.sweep_seconds`, until cancelled."""
        while True:
            for sweep in (self.sweep_outbox, self.sweep_leases, self.sweep_timers, self.sweep_bulk):
                try:
                    await sweep()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 - the store or the broker is away: try again next round
                    log.warning("%s failed: %s", sweep.__name__, error)
            await asyncio.sleep(self.timing.sweep_seconds)

    async def sweep_outbox(self) -> int:
        """Publish outbox entries older than the grace period: their first publish failed or never happened."""
        older_than = datetime.now(UTC) - timedelta(seconds=self.timing.outbox_grace_seconds)
        entries = await self.store.unsent(older_than, SWEEP_BATCH)
        for outbox_id, dispatch in entries:
            await self.dispatcher.publish(dispatch)
            self._mark_sent(outbox_id)
            log.info("re-published the chain of %s from the outbox", dispatch.operation_id)
        return len(entries)

    async def sweep_leases(self) -> int:
        """Settle the operations whose step lease lapsed and whose step's message the broker does not hold, and the
        stage members whose own lease lapsed (Store.members_lost) while nothing of their operation waits on the broker."""
        lapsed = await self.store.lapsed(SWEEP_BATCH)
        members = await self.store.lapsed_members(SWEEP_BATCH)
        if not lapsed and not members:
            return 0
        queues = {
            step.get("options", {}).get("queue", "")
            for workflow in await self.store.list_workflows()
            for step in stages.entries(workflow.plan)
        }
        whereabouts = await self.probe.whereabouts(queue for queue in queues if queue)
        waiting = {operation_id for (operation_id, _step, _attempt), where in whereabouts.items() if where is Whereabouts.QUEUED}
        queued = [operation_id for operation_id in lapsed if operation_id in waiting]
        if queued:
            await self.store.extend_lease(queued)
        settled = await self._members_lost(members, waiting)
        for operation_id in lapsed:
            if operation_id in waiting:
                continue
            delivered = any(op == operation_id and where is Whereabouts.DELIVERED for (op, _s, _a), where in whereabouts.items())
            reason = (Whereabouts.DELIVERED if delivered else Whereabouts.MISSING).value
            outcome = await self.store.lease_lapsed(operation_id, reason)
            if outcome is None:
                continue
            settled += 1
            log.warning("lease of %s lapsed (%s): %s", operation_id, reason, outcome.verdict.value)
            await self.flags.follow(operation_id, outcome.operation.state, outcome.operation.attempt)
            if outcome.verdict is LeaseVerdict.RETRY:
                await self._publish(Change(outcome.operation, outcome.dispatch, outbox=outcome.outbox))
        return settled

    async def _members_lost(self, operation_ids: builtins.list[str], waiting: set[str]) -> int:
        """Stage members whose lease lapsed: those of an operation with a message still on the broker wait on (a member
        may be behind it); the others are lost, sent again (or their operation stops, or fails: Store.members_lost)."""
        queued = [operation_id for operation_id in operation_ids if operation_id in waiting]
        if queued:
            await self.store.extend_member_leases(queued)
        settled = 0
        for operation_id in operation_ids:
            if operation_id in waiting:
                continue
            change = await self.store.members_lost(operation_id, "their worker stopped renewing their leases")
            if change is None:
                continue
            settled += 1
            log.warning("members of %s lost: now %s", operation_id, change.operation.state)
            await self.flags.follow(operation_id, change.operation.state, change.operation.attempt)
            await self._publish(change)
        return settled

    async def sweep_timers(self) -> int:
        """Cancel the operations whose running-time budget ran out, and resume or cancel the PAUSED ones whose pause
        timeout is due (timers.py); on every replica: each change is a compare-and-set, made once."""
        deadlines, pauses = await self.store.timers_due(SWEEP_BATCH)
        acted = 0
        for operation_id in deadlines:
            change = await self.store.deadline_passed(operation_id)
            if change is not None:
                acted += 1
                log.info("deadline of %s exceeded: cancel requested", operation_id)
                await self.flags.follow(operation_id, change.operation.state, change.operation.attempt)
        for operation_id in pauses:
            change = await self.store.pause_timed_out(operation_id)
            if change is not None:
                acted += 1
                log.info("pause timeout of %s: now %s", operation_id, change.operation.state)
                await self.flags.follow(operation_id, change.operation.state, change.operation.attempt)
                await self._publish(change)
        return acted

    async def sweep_bulk(self) -> int:
        """Go on with the bulk actions not done yet (another replica's, or this one's before a restart)."""
        running = await self.store.running_bulks(SWEEP_BATCH)
        for bulk_id in running:
            self._drive(bulk_id)
        return len(running)

    def _drive(self, bulk_id: str) -> None:
        """Process a bulk action in the background, batch after batch, unless this replica already is."""
        if bulk_id in self._bulks:
            return
        task = asyncio.create_task(self._run_bulk(bulk_id), name=f"pausable-bulk-{bulk_id}")
        self._bulks[bulk_id] = task
        task.add_done_callback(lambda _task: self._bulks.pop(bulk_id, None))

    async def _run_bulk(self, bulk_id: str) -> None:
        try:
            while True:
                outcome = await self.store.bulk_batch(bulk_id, bulk.BATCH)
                if outcome is None:  # another replica holds it now; the sweep looks again
                    return
                changes, finished = outcome
                for change in changes:
                    await self.flags.follow(change.operation.id, change.operation.state, change.operation.attempt)
                    await self._publish(change)
                if finished:
                    log.info("bulk action %s done", bulk_id)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the store is away: the sweep takes it up again
            log.warning("bulk action %s stopped, the sweep goes on with it: %s", bulk_id, error)

    async def close(self) -> None:
        for task in list(self._bulks.values()):
            task.cancel()
        if self._marking is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._marking, 5)
        await self.probe.close()
