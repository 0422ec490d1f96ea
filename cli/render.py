"""How the CLI shows operations: one line per event when piped, a live progress bar on a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pausable.clients import event_name, state_name
from pausable.jsonvalue import from_value
from pausable.v1 import operation_pb2 as pb


def operation_dict(op: pb.Operation) -> dict[str, Any]:
    return json_format.MessageToDict(op, preserving_proto_field_name=True)


def step_label(op: pb.Operation) -> str:
    shown = min(op.current_step + 1, op.total_steps)
    name = op.current_step_name.rsplit(".", 1)[-1] if op.current_step_name else ""
    return f"step {shown}/{op.total_steps}" + (f" {name}" if name else "")


def overall_fraction(op: pb.Operation) -> float:
    if op.total_steps == 0:
        return 0.0
    if op.state == pb.OPERATION_STATE_SUCCEEDED:
        return 1.0
    return min((op.current_step + op.progress) / op.total_steps, 1.0)


def event_line(event: pb.OperationEvent) -> str:
    op = event.operation
    parts = [f"#{event.seq:<3}", f"{event_name(event.type):<16}", f"{state_name(op.state):<16}", step_label(op)]
    if event.type == pb.EVENT_TYPE_PROGRESS:
        parts.append(f"{op.progress:4.0%}")
    if event.message:
        parts.append(f"- {event.message}")
    return " ".join(parts)


def print_operation(console: Console, op: pb.Operation) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("id", op.id)
    table.add_row("workflow", op.workflow)
    table.add_row("state", state_name(op.state))
    table.add_row("step", step_label(op))
    if op.progress_message:
        table.add_row("progress", f"{op.progress:.0%} {op.progress_message}")
    if op.HasField("input"):
        table.add_row("input", json.dumps(from_value(op.input)))
    if op.HasField("result"):
        table.add_row("result", json.dumps(from_value(op.result)))
    if op.HasField("error"):
        table.add_row("error", f"{op.error.code}: {op.error.message} (step {op.error.step + 1} {op.error.step_name})")
    if op.labels:
        table.add_row("labels", ", ".join(f"{k}={v}" for k, v in sorted(op.labels.items())))
    table.add_row("created", op.create_time.ToDatetime().isoformat(timespec="seconds") + "Z")
    table.add_row("last seq", str(op.last_seq))
    console.print(table)


def print_table(console: Console, operations: Iterable[pb.Operation]) -> None:
    table = Table(box=None)
    for column in ("ID", "WORKFLOW", "STATE", "STEP", "PROGRESS", "CREATED"):
        table.add_column(column, no_wrap=True)
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
                console.print_json(data=json_format.MessageToDict(event, preserving_proto_field_name=True), indent=None)
            else:
                console.print(event_line(event), highlight=False, soft_wrap=True)
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
            if event.type != pb.EVENT_TYPE_PROGRESS:
                bar.console.print(event_line(event), highlight=False, soft_wrap=True)
            bar.update(
                task,
                completed=overall_fraction(last),
                state=state_name(last.state),
                step=step_label(last),
                note=last.progress_message[:40],
            )
    console.print(f"elapsed {time.monotonic() - started:.1f}s")
    return last
