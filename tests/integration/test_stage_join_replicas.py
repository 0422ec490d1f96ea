"""A stage's join on two replicas of one Postgres: the last members' reports arrive at both at once, over many rounds;
each stage joins once (one STAGE_COMPLETED, one dispatch of the step after it), each member's result is applied once."""

from __future__ import annotations

import asyncio
import json

import pytest
from support.histories import members_named
from support.servers import PostgresServer

from pausable.server.dispatch import plan_for
from pausable.server.domain import StepReport, Workflow
from pausable.server.states import EventType
from pausable.server.store import Store

pytestmark = pytest.mark.integration
ROUNDS, MEMBERS = 20, 6


def report(operation_id: str, token: str, member: int) -> StepReport:
    return StepReport(operation_id, 0, str(member * 10), continued=True, attempt=1, step_token=token, member=member)


def test_the_last_members_reported_to_two_replicas_at_once_join_the_stage_once(postgres: PostgresServer) -> None:
    url = postgres.create_database("stage_join_replicas")
    plan = [{"task": "each(work)", "stage": {"each": plan_for(["work"]), "over": None, "max_parallel": 0}}, *plan_for(["merge"])]

    async def scenario() -> None:
        replicas = [await Store.open(url, replica="a"), await Store.open(url, replica="b")]
        try:
            await replicas[0].register_workflows([Workflow("w", plan)], "test")
            workflow = await replicas[0].get_workflow("w")
            assert workflow is not None
            for _ in range(ROUNDS):
                change = await replicas[0].create_operation(
                    workflow, input_json=json.dumps(list(range(MEMBERS))), request_id="", requester="", labels={}
                )
                assert change.dispatch is not None and change.dispatch.members == tuple(range(MEMBERS))
                operation_id, token = change.operation.id, change.dispatch.step_token

                # Every member reported twice (a redelivered task), each copy to another replica, all at once: first
                # all but the last member (the copies race to record each once), then the last one (both join?).
                outcomes = []
                for wave in (range(MEMBERS - 1), [MEMBERS - 1]):
                    outcomes += await asyncio.gather(
                        *(replicas[copy].checkpoints([report(operation_id, token, member)]) for member in wave for copy in (0, 1))
                    )
                dispatched = [o.resend for [o] in outcomes if o is not None and o.resend is not None]
                assert len(dispatched) == 1 and dispatched[0].start == 1, "one join, one dispatch of the next step"
                joined = await replicas[1].get_operation(operation_id)
                assert joined.result == [member * 10 for member in range(MEMBERS)] and joined.current_step == 1
                events = await replicas[1].events_after(operation_id, 0)
                assert [event.seq for event in events] == list(range(1, len(events) + 1))
                assert [event.type for event in events].count(EventType.STAGE_COMPLETED) == 1
                named = [
                    member
                    for event in events
                    if event.type == EventType.MEMBER_COMPLETED
                    for member in members_named(event.message)
                ]
                assert sorted(named) == list(range(1, MEMBERS + 1))
        finally:
            for store in replicas:
                await store.close()

    asyncio.run(scenario())
