"""The seed recipe's tappable(): where pause points go, and custom clause/callback semantics (eager, no broker)."""

from __future__ import annotations

from celery import chain

from pausable.workers import app, pause_or_continue, tappable
from pausable.workers.examples.demo import add

recorded: list[tuple[int, list[str]]] = []


@app.task(name="tests.is_big")
def is_big(value: int) -> bool:
    return value > 5


@app.task(name="tests.remember")
def remember(value: int, remaining: list[dict]) -> None:
    recorded.append((value, [entry["task"] for entry in remaining]))


def test_pause_points_go_after_every_nth_step_but_not_after_the_last() -> None:
    names = [s.task for s in tappable(chain(*(add.s(n) for n in range(5))), nth=2).tasks]
    assert names == ["demo.tapped.add"] * 2 + ["pausable.pause_or_continue"] + ["demo.tapped.add"] * 2 + [
        "pausable.pause_or_continue",
        "demo.tapped.add",
    ]
    assert [s.task for s in tappable(chain(add.s(1), add.s(2)), nth=1).tasks].count("pausable.pause_or_continue") == 1


def test_custom_clause_and_callback_stop_the_chain_with_the_remaining_steps() -> None:
    recorded.clear()
    remaining = [dict(add.s(100)), dict(add.s(10))]
    for value, stops in ((3, False), (12, True)):
        pause_or_continue.push_request(chain=list(remaining))
        try:
            assert pause_or_continue.run(value, clause=dict(is_big.s()), callback=dict(remember.s())) == value
            assert (pause_or_continue.request.chain is None) == stops
        finally:
            pause_or_continue.pop_request()
    assert recorded == [(12, ["demo.tapped.add", "demo.tapped.add"])]


def test_without_a_clause_the_value_passes_through() -> None:
    assert pause_or_continue.run(7) == 7
