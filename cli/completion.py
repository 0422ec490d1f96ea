"""`pausable completion SHELL`: print the shell completion script (click's shell_complete machinery).

The script calls `pausable` back with `_PAUSABLE_COMPLETE=<shell>_complete`
to complete commands, options and choices; click handles that call before
any command runs, so completing never touches the daemon.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

PROG_NAME = "pausable"
COMPLETE_VAR = "_PAUSABLE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def completion_script(root: click.Command, shell: str) -> str:
    """The script for `shell` that completes `root` when it is run as `pausable`."""
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all of SHELLS
        raise click.BadParameter(f"click has no completion for {shell}", param_hint="SHELL")
    return cls(root, {}, PROG_NAME, COMPLETE_VAR).source()


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish); load it in your shell's startup file.

    \b
    bash (~/.bashrc, bash 4.4 or newer):
      eval "$(pausable completion bash)"
    zsh (~/.zshrc):
      eval "$(pausable completion zsh)"
    fish:
      pausable completion fish > ~/.config/fish/completions/pausable.fish
    \b
    The same without this command: eval "$(_PAUSABLE_COMPLETE=bash_source pausable)"
    (zsh_source, fish_source for the other shells).
    """
    click.echo(completion_script(ctx.find_root().command, shell), nl=False)
