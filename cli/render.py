"""How the CLI shows operations: one line per event when piped, a live progress bar on a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pausable.clients.model import (
    NOT_READ,
    OperationData,
    StepRecord,
    event_dict,
    event_name,
    state_name,
    step_number,
)
from pausable.jsonvalue import from_value
from pausable.v1 import operation_pb2 as pb

# `get` shows a value whole up to this many characters; --full shows everything.
VALUE_CHARS = 400
TRACEBACK_LINES = 12


def step_label(op: pb.Operation, *, running: bool = False) -> str:
    """ "step 2/5 t2_transform"; while a stage runs "stage 2/3 · 37/200 done", and with `running` "(8 running)"."""
    shown = step_number(op)
    name = op.current_step_name.rsplit(".", 1)[-1] if op.current_step_name else ""
    stage = OperationData(op).stage
    label = f"{'step' if stage is None else 'stage'} {shown}/{op.total_steps}" + (f" {name}" if name else "")
    if stage is None:
        return label
    label += f" · {stage.members_done}/{stage.members_total} done"
    if running and stage.members_running:
        label += f" ({stage.members_running} running)"
    return label


def overall_fraction(op: pb.Operation) -> float:
    """Steps done plus the current one's part (a stage's: its members done), of all steps."""
    if op.total_steps == 0:
        return 0.0
    if op.state == pb.OPERATION_STATE_SUCCEEDED:
        return 1.0
    stage = OperationData(op).stage
    part = stage.fraction if stage is not None else op.progress
    return min((step_number(op) - 1 + part) / op.total_steps, 1.0)


# The events a client's Pause, Resume or Cancel appends: `watch` shows who asked, and why when they said.
COMMAND_EVENTS = frozenset(
    {
        pb.EVENT_TYPE_PAUSE_REQUESTED,
        pb.EVENT_TYPE_PAUSED,
        pb.EVENT_TYPE_RESUMED,
        pb.EVENT_TYPE_CANCEL_REQUESTED,
        pb.EVENT_TYPE_CANCELLED,
    }
)

# Events the live bar shows by moving (a step's progress, a stage's members done), not as lines of their own.
BAR_EVENTS = frozenset({pb.EVENT_TYPE_PROGRESS, pb.EVENT_TYPE_MEMBER_COMPLETED})


def event_line(event: pb.OperationEvent) -> str:
    op = event.operation
    parts = [f"#{event.seq:<3}", f"{event_name(event.type):<16}", f"{state_name(op.state):<16}", step_label(op)]
    if event.type == pb.EVENT_TYPE_PROGRESS:
        parts.append(f"{op.progress:4.0%}")
    if event.message:
        parts.append(f"- {event.message}")
    if event.type in COMMAND_EVENTS and event.actor:
        parts.append(f"[by {event.actor}" + (f": {event.reason}]" if event.reason else "]"))
    elif event.reason:
        parts.append(f"[{event.reason}]")
    return " ".join(parts)


def shortened(data: Any, full: bool) -> str:
    text = json.dumps(data)
    if full or len(text) <= VALUE_CHARS:
        return text
    return f"{text[:VALUE_CHARS]}… ({len(text)} characters; --full shows all)"


def traceback_end(text: str, full: bool) -> str:
    """A traceback's last TRACEBACK_LINES lines (where it was raised, and the exception), or all of it when `full`."""
    lines = text.rstrip().splitlines()
    if full or len(lines) <= TRACEBACK_LINES:
        return "\n".join(lines)
    return "\n".join([f"… ({len(lines) - TRACEBACK_LINES} lines above; --full shows all)", *lines[-TRACEBACK_LINES:]])


def print_operation(console: Console, op: pb.Operation, *, full: bool = False) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("id", op.id)
    table.add_row("workflow", op.workflow)
    table.add_row("state", state_name(op.state))
    table.add_row("step", step_label(op, running=True))
    if op.pause_before_step:
        table.add_row("breakpoint", f"pauses before step {op.pause_before_step}/{op.total_steps} (resume withdraws it)")
    if op.progress_message:
        table.add_row("progress", f"{op.progress:.0%} {op.progress_message}")
    view = OperationData(op)
    if op.input_json or op.HasField("input"):
        table.add_row("input", shortened(view.input, full))
    if op.result_json or op.HasField("result"):
        table.add_row("result", shortened(view.result, full))
    error = view.error
    if error is not None:
        member = f"member {error.member_index + 1} of " if error.member_index is not None else ""
        where = f" ({member}step {error.step}/{op.total_steps} {error.step_name})" if error.step else ""
        table.add_row("error", f"{error.code}: {error.message}{where}")
        if error.traceback:
            table.add_row("traceback", traceback_end(error.traceback, full))
    if op.parent_id:
        table.add_row("forked from", f"{op.parent_id} at step {op.forked_from_step}")
    if op.HasField("deadline"):
        budget, used = op.deadline.ToTimedelta().total_seconds(), op.deadline_used.ToTimedelta().total_seconds()
        table.add_row(
            "deadline",
            f"{used:.1f}s used of {budget:g}s running time" + (" (clock stopped)" if not op.HasField("deadline_time") else ""),
        )
    if op.HasField("pause_timeout_time"):
        action = "resumes" if op.pause_on_timeout == pb.PAUSE_TIMEOUT_ACTION_RESUME else "cancels"
        due = op.pause_timeout_time.ToDatetime().isoformat(timespec="seconds") + "Z"
        table.add_row("pause timeout", f"{action} at {due} unless resumed")
    if op.labels:
        table.add_row("labels", ", ".join(f"{k}={v}" for k, v in sorted(op.labels.items())))
    table.add_row("created", op.create_time.ToDatetime().isoformat(timespec="seconds") + "Z")
    table.add_row("last seq", str(op.last_seq))
    console.print(table, soft_wrap=True)


def step_line(record: StepRecord, full: bool = False) -> str:
    """One entry of the step history: step, kind, name, attempt, when it ended (UTC), how long it took, its size, and
    its value when read (an input replacement as old -> new)."""
    ended = record.end_time.strftime("%H:%M:%S.%f")[:-3] if record.end_time else "-"
    duration = f"{record.duration:.3f}s" if record.duration is not None else "-"
    line = f"{record.step:>3}  {record.kind:<6}  {record.name}  attempt {record.attempt}  {ended}  {duration}  {record.result_bytes} B"
    if record.kind == "input" and record.previous is not NOT_READ:
        line += f"  {shortened(record.previous, full)} -> {shortened(record.result, full)}"
    elif record.result is not NOT_READ:
        line += f"  {shortened(record.result, full)}"
    return line


def print_steps(console: Console, records: list[StepRecord], forks: list[str], *, full: bool = False) -> None:
    """The step history under `get --steps`, one line per entry (with --full, values whole), then the forks."""
    console.print("steps", style="bold")
    for record in records:
        console.print(step_line(record, full), highlight=False, soft_wrap=True)
    if not records:
        console.print("  none recorded yet", highlight=False)
    if forks:
        console.print("forks: " + ", ".join(forks), highlight=False, soft_wrap=True)


def print_table(console: Console, operations: Iterable[pb.Operation]) -> None:
    """Ids stay whole, so they can be copied; the other columns shrink to fit the terminal."""
    table = Table(box=None)
    table.add_column("ID", no_wrap=True, min_width=32)
    for column in ("WORKFLOW", "STATE", "STEP", "PROGRESS", "CREATED"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for op in operations:
        table.add_row(
            op.id,
            op.workflow,
            state_name(op.state),
            step_label(op),
            f"{overall_fraction(op):.0%}",
            op.create_time.ToDatetime().isoformat(sep=" ", timespec="seconds"),
        )
    console.print(table)


def follow(console: Console, events: Iterable[pb.OperationEvent], *, json_lines: bool = False) -> pb.Operation | None:
    """Show events until the stream ends; return the operation as last seen."""
    last: pb.Operation | None = None
    if json_lines or not console.is_terminal:
        for event in events:
            last = event.operation
            if json_lines:
                console.print(json.dumps(event_dict(event)), highlight=False, markup=False, soft_wrap=True)
            else:
                console.print(event_line(event), highlight=False, markup=False, soft_wrap=True)
        return last
    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.fields[state]:<16}"),
        TextColumn("{task.fields[step]}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("op", total=1.0, state="", step="", note="")
        for event in events:
            last = event.operation
            if event.type not in BAR_EVENTS:
                bar.console.print(event_line(event), highlight=False, markup=False, soft_wrap=True)
            bar.update(
                task,
                completed=overall_fraction(last),
                state=state_name(last.state),
                step=step_label(last),
                note=last.progress_message[:40],
            )
    console.print(f"elapsed {time.monotonic() - started:.1f}s")
    return last


def steps_line(flow: pb.Workflow) -> str:
    """The workflow's tasks in order; those the worker inserted (tappable's pause points, the closing finish) in
    parentheses, as they are not counted in "step k/n"."""
    try:
        plan = json.loads(flow.plan_json) if flow.plan_json else []
    except ValueError:
        plan = []
    if not isinstance(plan, list) or len(plan) != len(flow.steps):
        return " → ".join(flow.steps)
    inserted = [isinstance(entry, dict) and entry.get("inserted") is True for entry in plan]
    if not any(inserted) or all(inserted):
        return " → ".join(flow.steps)
    shown = [f"({name})" if extra else name for name, extra in zip(flow.steps, inserted, strict=True)]
    return f"{' → '.join(shown)}  [{inserted.count(False)} steps; (inserted) ones are not counted]"


def print_workflows(console: Console, flows: Iterable[pb.Workflow]) -> None:
    for flow in flows:
        console.print(f"[bold]{flow.name}[/]  {flow.description}", highlight=False)
        console.print("  steps: " + steps_line(flow), highlight=False, markup=False)
        schema = from_value(flow.input_schema) if flow.HasField("input_schema") else None
        if schema is None:
            console.print("  input: any JSON value", highlight=False)
        else:
            console.print("  input schema:", highlight=False)
            for line in json.dumps(schema, indent=2).splitlines():
                console.print("    " + line, highlight=False, markup=False, soft_wrap=True)


def bulk_line(action: pb.BulkAction) -> str:
    """One line of a bulk action's progress: `pause 340/1000: done 330, skipped 10 (already PAUSED 10), failed 0`."""
    kind = pb.BulkActionKind.Name(action.kind).removeprefix("BULK_ACTION_KIND_").lower()
    processed = action.done + action.skipped + action.failed
    line = f"{kind} {processed}/{action.matched}: done {action.done}, skipped {action.skipped}"
    if action.skipped_reasons:
        line += " (" + ", ".join(f"{skip.reason} {skip.count}" for skip in action.skipped_reasons) + ")"
    line += f", failed {action.failed}"
    if action.state == pb.BULK_ACTION_STATE_DONE:
        line += " - done"
    return line
