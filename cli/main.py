"""The root of the `pausable` command: the options every command shares, and the commands of both halves.

Operation commands (start, get, ls, pause, resume, cancel, retry, fork, watch, workflows)
are clients of the daemon and live in `operations`; the commands that run the
system (serve, worker, dev) live in `daemon`. Both read `ctx.obj` set here.
"""

from __future__ import annotations

import click

from pausable.cli import daemon, operations
from pausable.cli.completion import completion
from pausable.cli.exits import EXIT_HELP
from pausable.cli.options import setting_option


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EXIT_HELP)
@setting_option("daemon", "--daemon", "-d")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json: machine-readable output"
)
@setting_option("token", "--token", help="bearer token sent to the daemon (prefer PAUSABLE_TOKEN or --token-file)")
@setting_option("token_file", "--token-file")
@setting_option("tls_ca", "--tls-ca")
@setting_option("tls_client_cert", "--tls-cert", "tls_client_cert", help="client certificate (PEM) for mutual TLS")
@setting_option("tls_client_key", "--tls-key", "tls_client_key", help="the client certificate's private key (PEM)")
@click.pass_context
def main(
    ctx: click.Context,
    daemon: str,
    output: str,
    token: str,
    token_file: str,
    tls_ca: str,
    tls_client_cert: str,
    tls_client_key: str,
) -> None:
    """Pause, resume, cancel and watch long multi-step Celery jobs.

    \b
    Try it:
      pausable dev                                   # terminal 1: everything, embedded
      pausable start demo.etl --watch                # terminal 2
      pausable start demo.etl --input '{"step_seconds": 3}'
      pausable pause ID; pausable resume ID; pausable watch ID
    Shell completion (see `pausable completion --help`):
      eval "$(pausable completion bash)"             # in ~/.bashrc; zsh, fish too

    The client options (--daemon, -o, --token, --tls-*) go before or after
    the command's name: `pausable ls -o json` = `pausable -o json ls`.
    """
    ctx.obj = {
        "daemon": daemon,
        "output": output,
        "token": token,
        "token_file": token_file,
        "tls": (tls_ca, tls_client_cert, tls_client_key),
    }


for command in [*daemon.COMMANDS, *operations.COMMANDS, completion]:
    main.add_command(command)
