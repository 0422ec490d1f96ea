"""The commands that steer operations through the daemon: start, get, ls, pause, resume, cancel, retry, fork, watch,
workflows.

Each is a thin shell over the Python SDK (`pausable.clients`); how results
are printed is `render`'s job, and `-o json` prints the SDK's own JSON form
(`pausable.clients.model`). Exit codes: see `exits`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console

from pausable import tracing
from pausable.cli.exits import EXIT_CODES, EXIT_ERROR, EXIT_HELP
from pausable.cli.shared import client_options
from pausable.clients import (
    Client,
    NotFound,
    Operation,
    PausableError,
    StepRecord,
    bulk_action_dict,
    operation_dict,
    state_name,
    workflow_dict,
)
from pausable.clients.common import NO_INPUT
from pausable.v1 import operation_pb2 as pb

console = Console()
# `start` of a workflow nobody registered yet, while no workflow at all is registered (a worker starting, as in a
# fresh `pausable dev`): wait this long for it to appear before answering NOT_FOUND.
REGISTRATION_WAIT_SECONDS = 15.0
CONNECT_SECONDS = 2.0


def no_daemon(target: str) -> str:
    return f"no daemon at {target} — is `pausable dev` running? (--daemon / PAUSABLE_DAEMON)"


def _client(ctx: click.Context) -> Client:
    tracing.configure("pausable-cli")  # PAUSABLE_OTEL / PAUSABLE_OTEL_FILE: the command's calls start a trace
    from pausable.clients import tls_credentials

    obj = ctx.obj
    try:
        credentials = tls_credentials(*obj.get("tls", ("", "", "")))
        client = Client(obj["daemon"], token=obj.get("token") or None, token_file=obj.get("token_file") or None, tls=credentials)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot set up the connection's credentials: {error}") from None
    if not client.reachable(CONNECT_SECONDS):
        client.close()
        click.echo(f"error: {no_daemon(obj['daemon'])}", err=True)
        sys.exit(EXIT_ERROR)
    return client


def _json(data: Any) -> None:
    click.echo(json.dumps(data))


def _emit(ctx: click.Context, op: pb.Operation, *, full: bool = False) -> None:
    from pausable.cli.render import print_operation

    if ctx.obj["output"] == "json":
        _json(operation_dict(op))
    else:
        print_operation(console, op, full=full)


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
    from pausable.cli.render import follow, shortened

    json_lines = ctx.obj["output"] == "json"
    last = follow(console, (event.raw for event in client.watch(operation_id, after_seq)), json_lines=json_lines)
    if last is None:
        last = client.get(operation_id).proto
    if last.state in EXIT_CODES:
        if not json_lines:
            ended = Operation(client, last)
            console.print(f"operation {operation_id} {state_name(last.state)}", highlight=False)
            if last.state == pb.OPERATION_STATE_SUCCEEDED:
                console.print(f"result {shortened(ended.result, False)}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(EXIT_CODES[last.state])


def _parse_labels(labels: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep:
            raise click.BadParameter(f"{label!r} is not KEY=VALUE", param_hint="--label")
        pairs[key] = value
    return pairs


def _start(
    client: Client, workflow: str, data: Any, request_id: str | None, labels: dict[str, str], deadline: float | None = None
) -> Operation:
    """Start it; a workflow unknown while none is registered yet (a worker starting) is waited for, a few seconds."""
    request_id = request_id or os.urandom(16).hex()  # the same id for every try: one operation at most
    patience = time.monotonic() + REGISTRATION_WAIT_SECONDS
    while True:
        try:
            return client.start(
                workflow, data, request_id=request_id, requester=os.environ.get("USER", ""), labels=labels, deadline=deadline
            )
        except NotFound:
            if client.workflows() or time.monotonic() > patience:
                raise
            time.sleep(0.2)


UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str | None, option: str) -> float | None:
    """ "90", "90s", "10m", "1.5h", "2d" as seconds; None for None."""
    if value is None:
        return None
    number, unit = value.strip(), ""
    if number and number[-1].lower() in UNITS:
        number, unit = number[:-1], number[-1].lower()
    try:
        seconds = float(number) * UNITS[unit]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration: give e.g. 90s, 10m, 2h or 1d", param_hint=option) from None
    return seconds


@click.command(epilog=EXIT_HELP)
@click.argument("workflow")
@click.option("--input", "-i", "input_json", default=None, help="the input as JSON, e.g. '{\"rows\": 10}'")
@click.option("--label", "-l", "labels", multiple=True, help="KEY=VALUE (repeatable)")
@click.option("--request-id", default=None, help="idempotency key: the same id never starts a second run")
@click.option("--watch", "-w", is_flag=True, help="follow it until it ends and show its result (exit codes below)")
@click.option("--quiet", "-q", is_flag=True, help="print only the operation's id")
@click.option(
    "--deadline",
    default=None,
    metavar="DURATION",
    help="a budget of running time (90s, 10m, 2h; time PAUSED does not count): cancelled with DEADLINE_EXCEEDED past it",
)
@client_options
@click.pass_context
@_handle_errors
def start(
    ctx: click.Context,
    workflow: str,
    input_json: str | None,
    labels: tuple[str, ...],
    request_id: str | None,
    watch: bool,
    quiet: bool,
    deadline: str | None,
) -> None:
    """Start WORKFLOW with an input; print the operation (its id alone with -q, or follow it with --watch).

    \b
    Examples:
      pausable start demo.etl --watch
      ID=$(pausable start demo.etl -q -i '{"rows": 1000, "step_seconds": 2}' -l team=data)
      pausable start demo.etl --deadline 1h
    """
    try:
        data = json.loads(input_json) if input_json is not None else None
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--input") from None
    client = _client(ctx)
    op = _start(client, workflow, data, request_id, _parse_labels(labels), parse_duration(deadline, "--deadline"))
    if quiet:
        click.echo(op.id)
    if watch:
        if ctx.obj["output"] != "json" and not quiet:
            console.print(f"started {op.id}", highlight=False)
        _watch(ctx, client, op.id, 0)
    elif not quiet:
        _emit(ctx, op.proto)


@click.command()
@click.argument("operation_id")
@click.option("--full", is_flag=True, help="show the input and result whole (text output cuts long ones)")
@click.option(
    "--steps",
    is_flag=True,
    help="also list every step recorded (name, attempt, times, result size; with --full or -o json their results)",
)
@client_options
@click.pass_context
@_handle_errors
def get(ctx: click.Context, operation_id: str, full: bool, steps: bool) -> None:
    """Show one operation: state, step, progress, input, result or error (and its step history with --steps).

    \b
    Example:
      pausable get 01a218bd9c9be7d3da3aa68db8c96158
      pausable get ID -o json | jq .state
      pausable get ID --steps
    """
    client = _client(ctx)
    if not steps:
        _emit(ctx, client.get(operation_id).proto, full=full)
        return
    from pausable.cli.render import print_steps

    results = full or ctx.obj["output"] == "json"
    reply = client.history(operation_id, results)
    records = [StepRecord.from_proto(record) for record in reply.steps]
    if ctx.obj["output"] == "json":
        _json({**operation_dict(reply.operation), "steps": [r.to_dict() for r in records], "forks": list(reply.forks)})
        return
    _emit(ctx, reply.operation, full=full)
    print_steps(console, records, list(reply.forks), full=full)


@click.command(name="ls")
@click.option(
    "--state",
    "-s",
    "states",
    multiple=True,
    type=click.Choice([state_name(v) for v in pb.OperationState.values()][1:], case_sensitive=False),
)
@click.option("--workflow", "-w", default="")
@click.option("--label", "-l", "labels", multiple=True, help="only operations carrying KEY=VALUE (repeatable: all of them)")
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--stuck", is_flag=True, help="only active operations whose step lease lapsed (about to run their step again)")
@click.option("--full", is_flag=True, help="include each operation's input and result (with -o json)")
@client_options
@click.pass_context
@_handle_errors
def list_operations(
    ctx: click.Context, states: tuple[str, ...], workflow: str, labels: tuple[str, ...], limit: int, stuck: bool, full: bool
) -> None:
    """List operations, newest first.

    \b
    Examples:
      pausable ls -s RUNNING -s PAUSED -w demo.etl
      pausable ls -l team=data -o json
      pausable ls --stuck
    """
    from pausable.cli.render import print_table

    values = [pb.OperationState.Value(f"OPERATION_STATE_{s.upper()}") for s in states]
    view = pb.OPERATION_VIEW_FULL if full else pb.OPERATION_VIEW_BASIC
    response = _client(ctx).list(
        states=values, workflow=workflow, page_size=limit, stuck=stuck, view=view, labels=_parse_labels(labels)
    )
    if ctx.obj["output"] == "json":
        _json({"operations": [operation_dict(op) for op in response.operations], "next_page_token": response.next_page_token})
    else:
        print_table(console, response.operations)


STATE_NAMES = [state_name(v) for v in pb.OperationState.values()][1:]


def _pause_options(verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--timeout and --on-timeout, on pause only."""

    def add(function: Callable[..., Any]) -> Callable[..., Any]:
        if verb != "pause":
            return function
        function = click.option(
            "--on-timeout",
            type=click.Choice(["resume", "cancel"]),
            default=None,
            help="what the daemon does when --timeout passes",
        )(function)
        return click.option(
            "--timeout",
            default=None,
            metavar="DURATION",
            help="once PAUSED this long (90s, 10m, 2h) with nobody resuming it, --on-timeout happens",
        )(function)

    return add


def _command(verb: str, doc: str, options: Sequence[Callable[[Any], Any]] = ()) -> click.Command:
    """`pausable VERB ID --reason TEXT`, or `pausable VERB --all` with filters (a bulk action); `options`: the command's
    own click options for one operation, passed on as keyword arguments (`--input` as its JSON value)."""

    @click.command(name=verb, help=doc)
    @click.argument("operation_id", required=False)
    @click.option("--reason", default="", metavar="TEXT", help=REASON_HELP)
    @click.option("--all", "every", is_flag=True, help=f"{verb} every operation matching --workflow, --state, --label")
    @click.option("--workflow", "-w", default="", help="with --all: only operations of this workflow")
    @click.option(
        "--state", "-s", "states", multiple=True, type=click.Choice(STATE_NAMES, case_sensitive=False), help="with --all"
    )
    @click.option("--label", "-l", "labels", multiple=True, help="with --all: only operations carrying KEY=VALUE")
    @click.option("--yes", "-y", is_flag=True, help="with --all: do not ask for confirmation")
    @_pause_options(verb)
    @client_options
    @click.pass_context
    @_handle_errors
    def run(
        ctx: click.Context,
        operation_id: str | None,
        reason: str,
        every: bool,
        workflow: str,
        states: tuple[str, ...],
        labels: tuple[str, ...],
        yes: bool,
        timeout: str | None = None,
        on_timeout: str | None = None,
        **extra: Any,
    ) -> None:
        given = {name: value for name, value in extra.items() if value is not None and value is not False}
        if every:
            if operation_id:
                raise click.UsageError(f"give OPERATION_ID or --all, not both (`pausable {verb} --all -w WORKFLOW -s STATE`)")
            if timeout is not None or given:
                named = ["--timeout"] * (timeout is not None) + [
                    "--" + name.removesuffix("_json").replace("_", "-") for name in given
                ]
                raise click.UsageError(f"{', '.join(named)}: for one operation; a bulk {verb} takes none")
            _bulk(ctx, verb, reason, workflow, states, labels, yes)
            return
        if not operation_id:
            raise click.UsageError(f"give OPERATION_ID, or --all with filters (`pausable {verb} --all -w demo.etl -s RUNNING`)")
        if workflow or states or labels:
            raise click.UsageError("--workflow, --state and --label select operations for --all; add --all")
        if "input_json" in given:
            given["input"] = _json_option(given.pop("input_json"), "--input")
        if verb == "pause":
            if (timeout is None) != (on_timeout is None):
                raise click.UsageError("--timeout and --on-timeout go together: e.g. --timeout 1h --on-timeout cancel")
            if timeout is not None:
                given |= {"timeout": parse_duration(timeout, "--timeout"), "on_timeout": on_timeout}
        _emit(ctx, getattr(_client(ctx), verb)(operation_id, reason=reason, **given).proto)

    for option in options:
        run = option(run)
    return run


REASON_HELP = "why (at most 1000 characters): recorded with your name on the event, shown by `pausable watch`"


def _bulk(
    ctx: click.Context, verb: str, reason: str, workflow: str, states: tuple[str, ...], labels: tuple[str, ...], yes: bool
) -> None:
    """`pause|resume|cancel --all`: after a confirmation (unless --yes), one bulk action; its progress until done.
    Exits 1 when an operation could not be processed (failed)."""
    from pausable.cli.render import bulk_line

    label_pairs = _parse_labels(labels)
    chosen = [f"workflow {workflow}"] if workflow else []
    chosen += [f"state {' or '.join(s.upper() for s in states)}"] if states else []
    chosen += [f"label {k}={v}" for k, v in label_pairs.items()]
    scope = "every operation" + (" with " + ", ".join(chosen) if chosen else " (no filter)")
    if not yes:
        click.confirm(f"{verb} {scope}?", abort=True, err=True)
    client = _client(ctx)
    values = [pb.OperationState.Value(f"OPERATION_STATE_{s.upper()}") for s in states]
    action = getattr(client, f"bulk_{verb}")(None, states=values, workflow=workflow, labels=label_pairs, reason=reason)
    last = action.raw
    for update in client.watch_bulk_action(action.id):
        last = update.raw
        if ctx.obj["output"] != "json":
            console.print(bulk_line(last), highlight=False)
    if ctx.obj["output"] == "json":
        _json(bulk_action_dict(last))
    if last.failed:
        sys.exit(EXIT_ERROR)


def _json_option(text: str | None, hint: str) -> Any:
    """The JSON value of an --input option; NO_INPUT when it was not given."""
    if text is None:
        return NO_INPUT
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint=hint) from None


pause = _command(
    "pause",
    "Ask OPERATION_ID to pause at its next step boundary.\n\n"
    "It shows PAUSE_REQUESTED until the running step ends, then PAUSED; a pause during the last step comes too late "
    "and the operation SUCCEEDS. A step that checks stop_requested() pauses where it is, within the step. "
    "--before-step N sets a breakpoint instead: the operation runs on and pauses when it reaches step N; "
    "`pausable resume ID` withdraws it. With --timeout and --on-timeout, the daemon resumes or cancels it once it has "
    "been PAUSED that long. With --all (and filters) instead of an id, every matching operation, in the background.\n\n"
    "\b\nExamples:\n  pausable pause ID --reason 'db maintenance' && pausable watch ID\n"
    "  pausable pause ID --before-step 4\n  pausable pause ID --timeout 1h --on-timeout cancel\n"
    "  pausable pause --all --workflow demo.etl --state RUNNING",
    [
        click.option(
            "--before-step",
            "before_step",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="pause when the operation reaches step N (1-based, as `step N/M` counts), not at the next boundary",
        ),
    ],
)
resume = _command(
    "resume",
    "Resume a paused OPERATION_ID, or withdraw a pause that has not taken effect yet.\n\n"
    "Any worker picks up the remaining steps, fed the stored result of the last one, or, with --input, that value "
    "instead (only when PAUSED; checked against the next step's input schema; the old and new values stay in the "
    "step history, `pausable get ID --steps`). With --all (and filters), every matching operation.\n\n"
    "\b\nExamples:\n  pausable resume ID --reason 'maintenance over'\n"
    "  pausable resume ID --input '{\"rows\": 500}' --reason 'fewer rows'\n  pausable resume --all -w demo.etl -s PAUSED --yes",
    [
        click.option(
            "--input",
            "-i",
            "input_json",
            default=None,
            metavar="JSON",
            help="what the next step receives instead of the stored result",
        ),
    ],
)


@click.command()
@click.argument("operation_id")
@click.option("--reason", default="", metavar="TEXT", help=REASON_HELP)
@client_options
@click.pass_context
@_handle_errors
def retry(ctx: click.Context, operation_id: str, reason: str) -> None:
    """Run a FAILED or CANCELLED OPERATION_ID again from the step that failed (or was interrupted).

    The same operation goes on (a RETRIED event, then the steps), fed the result stored before that step.

    \b
    Example:
      pausable retry ID --reason 'the database is back' && pausable watch ID
    """
    _emit(ctx, _client(ctx).retry(operation_id, reason=reason).proto)


@click.command()
@click.argument("operation_id")
@click.option("--from-step", "-s", type=click.IntRange(min=1), required=True, help="the 1-based step the fork starts at")
@click.option(
    "--input", "-i", "input_json", default=None, metavar="JSON", help="what that step receives (default: what the parent's did)"
)
@click.option("--label", "-l", "labels", multiple=True, help="KEY=VALUE (repeatable; the parent's labels are kept)")
@click.option("--reason", default="", metavar="TEXT", help=REASON_HELP)
@click.option("--quiet", "-q", is_flag=True, help="print only the new operation's id")
@client_options
@click.pass_context
@_handle_errors
def fork(
    ctx: click.Context,
    operation_id: str,
    from_step: int,
    input_json: str | None,
    labels: tuple[str, ...],
    reason: str,
    quiet: bool,
) -> None:
    """Start a new operation of OPERATION_ID's workflow at step --from-step, fed what that step received in the
    parent (or --input). Both records name the link: the fork's parent_id, the parent's forks (`get --steps`).

    \b
    Example:
      pausable fork ID --from-step 3
      CHILD=$(pausable fork ID -s 2 -q --input '{"rows": 10}')
    """
    data = _json_option(input_json, "--input")
    op = _client(ctx).fork(operation_id, from_step, data, reason=reason, labels=_parse_labels(labels))
    if quiet:
        click.echo(op.id)
    else:
        _emit(ctx, op.proto)


cancel = _command(
    "cancel",
    "Cancel OPERATION_ID: at once when paused, otherwise at the next step boundary.\n\n"
    "A cancel during the last step comes too late: the operation SUCCEEDS. --force cancels a running operation at "
    "once: its running step is terminated (its worker process killed), even one that never checks for a stop. "
    "With --all (and filters), every matching operation.\n\n\b\nExamples:\n  pausable cancel ID --reason 'wrong input'\n"
    "  pausable cancel ID --force\n  pausable cancel --all -l batch=7 --yes",
    [click.option("--force", is_flag=True, default=False, help="cancel now and terminate the running step")],
)


@click.command(epilog=EXIT_HELP)
@click.argument("operation_id")
@click.option("--after-seq", default=0, show_default=True, help="show only events after this seq")
@client_options
@click.pass_context
@_handle_errors
def watch(ctx: click.Context, operation_id: str, after_seq: int) -> None:
    """Follow OPERATION_ID's events live until it ends, then show how it ended (exit codes below).

    Replays the history first; on a terminal it shows a progress bar.
    A broken connection is reopened after the last event seen.

    \b
    Example:
      pausable watch ID
      pausable watch ID --after-seq 12 -o json
    """
    _watch(ctx, _client(ctx), operation_id, after_seq)


@click.command()
@client_options
@click.pass_context
@_handle_errors
def workflows(ctx: click.Context) -> None:
    """List the workflows that workers have registered, with their steps and input schema.

    A workflow appears when a worker that defines it starts (`pausable worker -m module`).

    \b
    Example:
      pausable workflows -o json
    """
    from pausable.cli.render import print_workflows

    found = _client(ctx).workflows()
    if ctx.obj["output"] == "json":
        _json([workflow_dict(w) for w in found])
    else:
        print_workflows(console, found)


COMMANDS: list[click.Command] = [start, get, list_operations, pause, resume, cancel, retry, fork, watch, workflows]
