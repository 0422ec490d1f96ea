"""Settings read from PAUSABLE_* environment variables (pure: no servers)."""

from __future__ import annotations

import pytest

from pausable.config import Settings


@pytest.mark.parametrize(
    ("text", "modules"),
    [
        ("myproject.workflows", ["myproject.workflows"]),
        ("a.flows,b.flows", ["a.flows", "b.flows"]),
        (" a.flows , b.flows ,", ["a.flows", "b.flows"]),
        ('["a.flows", "b.flows"]', ["a.flows", "b.flows"]),
    ],
)
def test_worker_modules_take_a_comma_separated_list_or_json(
    monkeypatch: pytest.MonkeyPatch, text: str, modules: list[str]
) -> None:
    monkeypatch.setenv("PAUSABLE_WORKER_MODULES", text)
    assert Settings().worker_modules == modules


def test_worker_modules_are_none_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example workflows are registered only when asked (`-m`, PAUSABLE_WORKER_MODULES, or `pausable dev`)."""
    monkeypatch.delenv("PAUSABLE_WORKER_MODULES", raising=False)
    assert Settings().worker_modules == []


def test_pausable_worker_without_modules_says_how_to_name_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from pausable.cli.main import main

    monkeypatch.delenv("PAUSABLE_WORKER_MODULES", raising=False)
    for variable in ("PAUSABLE_DAEMON", "PAUSABLE_BROKER_URL"):  # the command sets them for its worker
        monkeypatch.setenv(variable, "")
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "-m module" in result.output and "PAUSABLE_WORKER_MODULES" in result.output
