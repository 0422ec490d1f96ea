"""What a legal history is: each event follows from the state before it by a transition of the state machine."""

from __future__ import annotations

from pausable.v1 import operation_pb2 as pb

RUNNING, PENDING, PAUSED = pb.OPERATION_STATE_RUNNING, pb.OPERATION_STATE_PENDING, pb.OPERATION_STATE_PAUSED
PAUSE_REQ, CANCEL_REQ = pb.OPERATION_STATE_PAUSE_REQUESTED, pb.OPERATION_STATE_CANCEL_REQUESTED
ACTIVE = {RUNNING, PAUSE_REQ, CANCEL_REQ}
TERMINAL = {pb.OPERATION_STATE_SUCCEEDED, pb.OPERATION_STATE_FAILED, pb.OPERATION_STATE_CANCELLED}
ALLOWED = {
    pb.EVENT_TYPE_STARTED: {PENDING},
    pb.EVENT_TYPE_STEP_COMPLETED: ACTIVE,
    pb.EVENT_TYPE_STEP_RETRIED: {RUNNING},
    pb.EVENT_TYPE_PROGRESS: ACTIVE,
    pb.EVENT_TYPE_PAUSE_REQUESTED: {RUNNING, PENDING},
    pb.EVENT_TYPE_PAUSED: {PAUSE_REQ, RUNNING},
    pb.EVENT_TYPE_RESUMED: {PAUSED, PAUSE_REQ, RUNNING},  # RUNNING: a breakpoint withdrawn
    pb.EVENT_TYPE_CANCEL_REQUESTED: {RUNNING, PAUSE_REQ},
    pb.EVENT_TYPE_CANCELLED: {CANCEL_REQ, PAUSED, PENDING, RUNNING, PAUSE_REQ},  # the last two: Cancel(force=true)
    pb.EVENT_TYPE_SUCCEEDED: ACTIVE,
    pb.EVENT_TYPE_FAILED: ACTIVE,
    pb.EVENT_TYPE_RETRIED: {pb.OPERATION_STATE_FAILED, pb.OPERATION_STATE_CANCELLED},
    pb.EVENT_TYPE_STAGE_STARTED: ACTIVE,
    pb.EVENT_TYPE_MEMBER_COMPLETED: ACTIVE,
    pb.EVENT_TYPE_STAGE_COMPLETED: ACTIVE,
}


def assert_legal(events: list[pb.OperationEvent]) -> None:
    """Seqs 1, 2, 3 ... without a gap, from CREATED, each event a legal transition from the state before it."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "the history has a gap"
    assert events[0].type == pb.EVENT_TYPE_CREATED
    state = events[0].operation.state
    for event in events[1:]:
        assert state in ALLOWED[event.type], f"{pb.EventType.Name(event.type)} from {pb.OperationState.Name(state)}"
        state = event.operation.state


def members_named(message: str) -> list[int]:
    """The members (numbered from 1) a MEMBER_COMPLETED message names: "members 1-3, 6 of stage 2/3 done (4/10)"."""
    named = message.split(" of stage", 1)[0].split(" ", 1)[1]
    members: list[int] = []
    for run in named.split(", "):
        first, _, last = run.partition("-")
        members.extend(range(int(first), int(last or first) + 1))
    return members


def completed_members(events: list[pb.OperationEvent]) -> list[int]:
    """Every member the history's MEMBER_COMPLETED events name, in the order named."""
    return [member for event in events if event.type == pb.EVENT_TYPE_MEMBER_COMPLETED for member in members_named(event.message)]
