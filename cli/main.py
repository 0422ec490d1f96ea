"""The root of the `pausable` command: the options every command shares, and the commands of both halves.

Operation commands (start, get, ls, pause, resume, cancel, watch, workflows)
are clients of the daemon and live in `operations`; the commands that run the
system (serve, worker, dev) live in `daemon`. Both read `ctx.obj` set here.
"""

from __future__ import annotations

import click

from pausable.cli import daemon, operations
from pausable.cli.completion import completion
from pausable.cli.options import setting_option


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@setting_option("daemon", "--daemon", "-d")
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


for command in [*daemon.COMMANDS, *operations.COMMANDS, completion]:
    main.add_command(command)
