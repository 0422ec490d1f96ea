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


def test_worker_modules_default_to_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAUSABLE_WORKER_MODULES", raising=False)
    assert Settings().worker_modules == ["pausable.workers.examples.demo"]
