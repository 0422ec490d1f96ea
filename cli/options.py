"""Click options for fields of the settings object, so a flag's default, env var and help come from `pausable.config`.

A flag that copied its default would drift from the Settings field that the
daemon and the workers read; here the field is the only place it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args, get_origin

import click

from pausable.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def setting_option(field: str, *decls: str, envvar: bool = True, **attrs: Any) -> Callable[[F], F]:
    """`click.option` for Settings.`field`: its default and description, `PAUSABLE_<FIELD>` unless `envvar=False`.

    A Literal field becomes a choice; `attrs` override the rest (e.g. a shorter help).
    """
    info = Settings.model_fields[field]
    if get_origin(info.annotation) is Literal:
        attrs.setdefault("type", click.Choice([str(choice) for choice in get_args(info.annotation)]))
    attrs.setdefault("help", info.description)
    name = f"PAUSABLE_{field.upper()}"
    return click.option(
        *decls, default=info.get_default(), show_default=True, envvar=name if envvar else None, show_envvar=envvar, **attrs
    )
