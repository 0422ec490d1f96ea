"""The client options (--daemon, -o, --token, ...) that every operation command also takes after its name.

`pausable -o json ls` and `pausable ls -o json` mean the same: the root group
reads them first (with their defaults and PAUSABLE_* variables), and a value
given after the subcommand replaces the root's in `ctx.obj`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _into(key: str, index: int | None = None) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None:
            return
        obj = ctx.ensure_object(dict)
        if index is None:
            obj[key] = value
        else:
            parts = list(obj.get(key, ("", "", "")))
            parts[index] = value
            obj[key] = tuple(parts)

    return store


def client_options(command: F) -> F:
    """The root's client options on a subcommand (no defaults here: an option left out keeps the root's value)."""
    options = [
        click.option("--daemon", "-d", callback=_into("daemon"), expose_value=False, help="daemon address host:port"),
        click.option(
            "--output",
            "-o",
            type=click.Choice(["text", "json"]),
            callback=_into("output"),
            expose_value=False,
            help="json: machine-readable output",
        ),
        click.option("--token", callback=_into("token"), expose_value=False, help="bearer token sent to the daemon"),
        click.option("--token-file", callback=_into("token_file"), expose_value=False, help="file holding the token"),
        click.option("--tls-ca", callback=_into("tls", 0), expose_value=False, help="CA certificate (PEM) for TLS"),
        click.option("--tls-cert", callback=_into("tls", 1), expose_value=False, help="client certificate (PEM), mTLS"),
        click.option("--tls-key", callback=_into("tls", 2), expose_value=False, help="the client certificate's key"),
    ]
    for option in reversed(options):
        command = option(command)
    return command
