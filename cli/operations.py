"""The commands that steer operations through the daemon: start, get, ls, pause, resume, cancel, watch, workflows.

Each is a thin shell over the Python SDK (`pausable.clients`); how results
are printed is `render`'s job. Exit codes: 0 SUCCEEDED, 2 FAILED,
3 CANCELLED, 1 for an error (named by its gRPC status).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from google.protobuf import json_format
from rich.console import Console

from pausable import tracing
from pausable.clients import Client, PausableError, state_name
from pausable.v1 import operation_pb2 as pb

EXIT_CODES = {pb.OPERATION_STATE_SUCCEEDED: 0, pb.OPERATION_STATE_FAILED: 2, pb.OPERATION_STATE_CANCELLED: 3}
EXIT_ERROR = 1
console = Console()


def _client(ctx: click.Context) -> Client:
    tracing.configure("pausable-cli")  # PAUSABLE_OTEL / PAUSABLE_OTEL_FILE: the command's calls start a trace
    from pausable.clients import tls_credentials

    obj = ctx.obj
    try:
        credentials = tls_credentials(*obj.get("tls", ("", "", "")))
        return Client(obj["daemon"], token=obj.get("token") or None, token_file=obj.get("token_file") or None, tls=credentials)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot set up the connection's credentials: {error}") from None


def _emit(ctx: click.Context, op: pb.Operation) -> None:
    from pausable.cli.render import operation_dict, print_operation

    if ctx.obj["output"] == "json":
        click.echo(json.dumps(operation_dict(op)))
    else:
        print_operation(console, op)


def _handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PausableError as error:
            click.echo(f"error: {error.code.name}: {error.message}", err=True)
            sys.exit(EXIT_ERROR)

    wrapper.__name__ = command.__name__
    wrapper.__doc__ = command.__doc__
    return wrapper


def _watch(ctx: click.Context, client: Client, operation_id: str, after_seq: int) -> None:
    from pausable.cli.render import follow

    last = follow(console, client.watch(operation_id, after_seq), json_lines=ctx.obj["output"] == "json")
    if last is None:
        last = client._get(operation_id)
    if last.state in EXIT_CODES:
        if ctx.obj["output"] != "json":
            console.print(f"operation {operation_id} {state_name(last.state)}", highlight=False)
        sys.exit(EXIT_CODES[last.state])


def _parse_labels(labels: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep:
            raise click.BadParameter(f"{label!r} is not KEY=VALUE", param_hint="--label")
        pairs[key] = value
    return pairs


@click.command()
@click.argument("workflow")
@click.option("--input", "-i", "input_json", default=None, help="the input as JSON, e.g. '{\"rows\": 10}'")
@click.option("--label", "-l", "labels", multiple=True, help="KEY=VALUE (repeatable)")
@click.option("--request-id", default=None, help="idempotency key: the same id never starts a second run")
@click.option("--watch", "-w", is_flag=True, help="follow it until it ends; exit 0 SUCCEEDED, 2 FAILED, 3 CANCELLED")
@click.pass_context
@_handle_errors
def start(
    ctx: click.Context, workflow: str, input_json: str | None, labels: tuple[str, ...], request_id: str | None, watch: bool
) -> None:
    """Start WORKFLOW with an input; print the operation (or follow it with --watch).

    \b
    Examples:
      pausable start demo.etl --watch
      pausable start demo.etl -i '{"rows": 1000, "step_seconds": 2}' -l team=data
    """
    try:
        data = json.loads(input_json) if input_json is not None else None
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--input") from None
    client = _client(ctx)
    op = client.start(workflow, data, request_id=request_id, requester=os.environ.get("USER", ""), labels=_parse_labels(labels))
    if watch:
        if ctx.obj["output"] != "json":
            console.print(f"started {op.id}", highlight=False)
        _watch(ctx, client, op.id, 0)
    else:
        _emit(ctx, op.proto)


@click.command()
@click.argument("operation_id")
@click.pass_context
@_handle_errors
def get(ctx: click.Context, operation_id: str) -> None:
    """Show one operation: state, step, progress, input, result or error.

    \b
    Example:
      pausable get 01a218bd9c9be7d3da3aa68db8c96158
      pausable -o json get ID | jq .state
    """
    _emit(ctx, _client(ctx)._get(operation_id))


@click.command(name="ls")
@click.option(
    "--state",
    "-s",
    "states",
    multiple=True,
    type=click.Choice([state_name(v) for v in pb.OperationState.values()][1:], case_sensitive=False),
)
@click.option("--workflow", "-w", default="")
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--stuck", is_flag=True, help="only active operations whose step lease lapsed (about to run their step again)")
@click.option("--full", is_flag=True, help="include each operation's input and result (with -o json)")
@click.pass_context
@_handle_errors
def list_operations(ctx: click.Context, states: tuple[str, ...], workflow: str, limit: int, stuck: bool, full: bool) -> None:
    """List operations, newest first.

    \b
    Examples:
      pausable ls -s RUNNING -s PAUSED -w demo.etl
      pausable ls --stuck
    """
    from pausable.cli.render import operation_dict, print_table

    values = [pb.OperationState.Value(f"OPERATION_STATE_{s.upper()}") for s in states]
    view = pb.OPERATION_VIEW_FULL if full else pb.OPERATION_VIEW_BASIC
    response = _client(ctx).list(states=values, workflow=workflow, page_size=limit, stuck=stuck, view=view)
    if ctx.obj["output"] == "json":
        click.echo(
            json.dumps(
                {"operations": [operation_dict(op) for op in response.operations], "next_page_token": response.next_page_token}
            )
        )
    else:
        print_table(console, response.operations)


def _command(verb: str, doc: str) -> click.Command:
    @click.command(name=verb, help=doc)
    @click.argument("operation_id")
    @click.pass_context
    @_handle_errors
    def run(ctx: click.Context, operation_id: str) -> None:
        _emit(ctx, getattr(_client(ctx), verb)(operation_id))

    return run


pause = _command(
    "pause",
    "Ask OPERATION_ID to pause at its next step boundary.\n\n"
    "It shows PAUSE_REQUESTED until the running step ends, then PAUSED; a pause during the last step comes too late "
    "and the operation SUCCEEDS.\n\n\b\nExample:\n  pausable pause ID && pausable watch ID",
)
resume = _command(
    "resume",
    "Resume a paused OPERATION_ID, or withdraw a pause that has not taken effect yet.\n\n"
    "Any worker picks up the remaining steps, fed the stored result of the last one.\n\n\b\nExample:\n  pausable resume ID",
)
cancel = _command(
    "cancel",
    "Cancel OPERATION_ID: at once when paused, otherwise at the next step boundary.\n\n"
    "A cancel during the last step comes too late: the operation SUCCEEDS.\n\n\b\nExample:\n  pausable cancel ID",
)


@click.command()
@click.argument("operation_id")
@click.option("--after-seq", default=0, show_default=True, help="show only events after this seq")
@click.pass_context
@_handle_errors
def watch(ctx: click.Context, operation_id: str, after_seq: int) -> None:
    """Follow OPERATION_ID's events live until it ends (exit 0 SUCCEEDED, 2 FAILED, 3 CANCELLED).

    Replays the history first; on a terminal it shows a progress bar.
    A broken connection is reopened after the last event seen.

    \b
    Example:
      pausable watch ID
      pausable watch ID --after-seq 12 -o json
    """
    _watch(ctx, _client(ctx), operation_id, after_seq)


@click.command()
@click.pass_context
@_handle_errors
def workflows(ctx: click.Context) -> None:
    """List the workflows that workers have registered, with their steps.

    A workflow appears when a worker that defines it starts (`pausable worker -m module`).

    \b
    Example:
      pausable -o json workflows
    """
    found = _client(ctx).workflows()
    if ctx.obj["output"] == "json":
        click.echo(json.dumps([json_format.MessageToDict(w, preserving_proto_field_name=True) for w in found]))
        return
    for flow in found:
        console.print(f"[bold]{flow.name}[/]  {flow.description}")
        console.print("  steps: " + " → ".join(flow.steps), highlight=False)


COMMANDS: list[click.Command] = [start, get, list_operations, pause, resume, cancel, watch, workflows]
