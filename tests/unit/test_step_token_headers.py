"""The worker side of step tokens: every report reads the token from the step's message headers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pausable.headers import ATTEMPT_HEADER, OPERATION_HEADER, STEP_HEADER, STEP_TOKEN_HEADER
from pausable.server.dispatch import messages, plan_for
from pausable.server.domain import Dispatch
from pausable.workers import heartbeat, queues
from pausable.workers.task import Position, _position

OP = "0" * 32


def headers(step: int, token: str = "secret") -> dict[str, Any]:
    return {OPERATION_HEADER: OP, STEP_HEADER: step, ATTEMPT_HEADER: 2, STEP_TOKEN_HEADER: token}


def test_every_step_of_a_dispatch_carries_its_token_after_any_other_header() -> None:
    plan = plan_for(["a", "b", "c"])
    steps = messages(Dispatch(OP, plan, 1, 0, 2, {STEP_TOKEN_HEADER: "from-elsewhere"}, "secret"))
    assert [s["options"]["headers"][STEP_TOKEN_HEADER] for s in steps] == ["secret", "secret"]


def test_a_task_reads_its_position_and_token() -> None:
    assert _position(SimpleNamespace(**headers(3))) == Position(OP, 3, 2, "secret")
    assert _position(SimpleNamespace(**{OPERATION_HEADER: OP, STEP_HEADER: 1})) == Position(OP, 1, 0, "")


def test_heartbeats_send_each_held_step_with_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = [SimpleNamespace(request_dict=headers(0, "t0")), SimpleNamespace(request_dict={"id": "plain task"})]
    monkeypatch.setattr(heartbeat.state, "reserved_requests", requests[:1])
    monkeypatch.setattr(heartbeat.state, "active_requests", requests[1:])
    assert heartbeat.held_steps() == [(OP, 0, 2, "t0", -1)]


def test_a_stray_step_fails_its_operation_with_its_token() -> None:
    assert queues._position(SimpleNamespace(headers=headers(4))) == (OP, 4, 2, "secret")
