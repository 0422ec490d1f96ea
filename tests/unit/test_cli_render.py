"""What the CLI prints for an operation (`get`, `list`, `watch` lines and its live bar), without a daemon."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from pausable.cli.render import event_line, follow, overall_fraction, print_operation, print_table, step_label
from pausable.v1 import operation_pb2 as pb


def staged(**fields: Any) -> pb.Operation:
    """Step 2/3 of a workflow, a map stage of 200 members: 37 done, 8 running."""
    given: dict[str, Any] = {
        "id": "a" * 32,
        "workflow": "demo.files",
        "state": pb.OPERATION_STATE_RUNNING,
        "current_step": 1,
        "total_steps": 3,
        "step_number": 2,
        "stage": pb.StageProgress(members_total=200, members_done=37, members_running=8),
    }
    return pb.Operation(**(given | fields))


def printed(op: pb.Operation, *, table: bool = False) -> str:
    """What `get` (or, with `table`, `list`) prints for `op`."""
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    if table:
        print_table(console, [op])
    else:
        print_operation(console, op)
    return out.getvalue()


def test_a_plain_step_is_labelled_as_before() -> None:
    op = pb.Operation(total_steps=5, step_number=2, current_step_name="demo.etl.t2_transform", progress=0.5)
    assert step_label(op) == "step 2/5 t2_transform"
    assert step_label(op, running=True) == "step 2/5 t2_transform"
    assert overall_fraction(op) == pytest.approx(0.3)


def test_a_running_stage_shows_its_members() -> None:
    op = staged()
    assert step_label(op) == "stage 2/3 · 37/200 done"
    assert step_label(op, running=True) == "stage 2/3 · 37/200 done (8 running)"
    named = staged(current_step_name="demo.files.process_file")
    assert step_label(named) == "stage 2/3 process_file · 37/200 done"
    idle = staged(stage=pb.StageProgress(members_total=4, members_done=4))
    assert step_label(idle, running=True) == "stage 2/3 · 4/4 done", "no '(0 running)'"


def test_the_bar_of_a_stage_follows_its_members_not_the_step_progress() -> None:
    op = staged(progress=0.9)
    assert overall_fraction(op) == pytest.approx((1 + 37 / 200) / 3)
    empty = staged(stage=pb.StageProgress(members_total=0))
    assert overall_fraction(empty) == pytest.approx(1 / 3), "a map over an empty list: no division by zero"
    assert overall_fraction(staged(state=pb.OPERATION_STATE_SUCCEEDED)) == 1.0


def test_get_and_list_show_the_stage() -> None:
    text = printed(staged())
    assert "stage 2/3 · 37/200 done (8 running)" in text
    table = printed(staged(), table=True)
    assert "stage 2/3 · 37/200 done  40%" in table, "(1 step + 37/200) of 3"


def test_a_failed_member_is_named_in_the_error() -> None:
    error = pb.OperationError(
        code="ValueError", message="bad row", step=1, step_number=2, step_name="process_file", member_index=7
    )
    failed = pb.Operation(id="b" * 32, state=pb.OPERATION_STATE_FAILED, current_step=1, total_steps=3, step_number=2, error=error)
    assert "ValueError: bad row (member 8 of step 2/3 process_file)" in printed(failed)
    first = pb.Operation()
    first.CopyFrom(failed)
    first.error.member_index = 0
    assert "(member 1 of step 2/3 process_file)" in printed(first), "index 0 is set, not absent"
    first.error.ClearField("member_index")
    assert "(step 2/3 process_file)" in printed(first)


def test_watch_lines_of_the_stage_events() -> None:
    def line(kind: int, message: str, op: pb.Operation) -> str:
        return event_line(pb.OperationEvent(seq=9, type=kind, message=message, operation=op))

    started = line(
        pb.EVENT_TYPE_STAGE_STARTED,
        "stage 2/3 started: 200 members",
        staged(stage=pb.StageProgress(members_total=200, members_running=200)),
    )
    assert started.startswith("#9   STAGE_STARTED    RUNNING          stage 2/3 · 0/200 done - stage 2/3 started")
    members = line(pb.EVENT_TYPE_MEMBER_COMPLETED, "members 3, 7 of stage 2/3 done (37/200)", staged())
    assert members == "#9   MEMBER_COMPLETED RUNNING          stage 2/3 · 37/200 done - members 3, 7 of stage 2/3 done (37/200)"
    after = pb.Operation(
        state=pb.OPERATION_STATE_RUNNING, current_step=2, total_steps=3, step_number=3, current_step_name="m.save"
    )
    assert line(pb.EVENT_TYPE_STAGE_COMPLETED, "stage 2/3 done", after).endswith("step 3/3 save - stage 2/3 done")


def test_on_a_terminal_members_done_move_the_bar_and_print_no_line() -> None:
    events = [
        pb.OperationEvent(seq=5, type=pb.EVENT_TYPE_STAGE_STARTED, message="stage began", operation=staged()),
        pb.OperationEvent(seq=6, type=pb.EVENT_TYPE_MEMBER_COMPLETED, message="members 3, 7 done", operation=staged()),
    ]
    for terminal in (True, False):
        out = io.StringIO()
        last = follow(Console(file=out, width=200, force_terminal=terminal, color_system=None), events)
        assert last == events[-1].operation
        text = out.getvalue()
        assert "#5   STAGE_STARTED" in text and ("#6   MEMBER_COMPLETED" in text) is not terminal, text
        if terminal:
            assert "RUNNING          stage 2/3 · 37/200 done ━" in text, "the bar's label"
