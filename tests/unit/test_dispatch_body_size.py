"""dispatch.body_surely_small: when it says a start's message bodies are small, walking them would have said so too."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
from hypothesis import given, settings

from pausable.server import limits
from pausable.server.dispatch import body_surely_small, chains, split_chain
from pausable.server.domain import Dispatch, Workflow

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=60,
)


def bodies(dispatch: Dispatch) -> list[Any]:
    """What Celery's as_task_v2 makes the body of each chain's first message: (args, kwargs, embed)."""
    made = []
    for steps in chains(dispatch):
        first, rest = split_chain(steps)
        made.append((first["args"], first["kwargs"], {"callbacks": None, "errbacks": None, "chain": rest, "chord": None}))
    return made


@settings(max_examples=200, deadline=None)
@given(
    argument=JSON,
    plan_args=st.lists(st.lists(JSON, max_size=3), min_size=1, max_size=8),
    trace=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=80), max_size=3),
    start=st.integers(0, 7),
)
def test_a_body_judged_small_is_small(argument: Any, plan_args: list[list[Any]], trace: dict[str, str], start: int) -> None:
    plan = [
        {"task": f"t{i}", "args": args, "kwargs": {}, "options": {"queue": "q", "headers": {"h": "v"}}}
        for i, args in enumerate(plan_args)
    ]
    workflow = Workflow("w", plan)
    dispatch = Dispatch("o" * 32, workflow.stored_plan, min(start, len(plan) - 1), argument, 1, trace, "s" * 43)
    previous = limits.current
    limits.configure(limits.Limits(offload_json_bytes=1500))  # both answers happen with these sizes
    try:
        if body_surely_small(dispatch):
            assert all(not limits.json_bytes_over(body, 1500) for body in bodies(dispatch))
    finally:
        limits.configure(previous)


def test_only_a_start_of_a_known_plan_with_a_small_argument_is_judged_without_a_walk() -> None:
    plan = [{"task": "a", "args": [], "kwargs": {}, "options": {}} for _ in range(5)]
    workflow = Workflow("w", plan)
    assert body_surely_small(Dispatch("o" * 32, workflow.stored_plan, 0, {"rows": 10}, step_token="s" * 43))
    large = "x" * (limits.current.offload_json_bytes + 1)
    assert not body_surely_small(Dispatch("o" * 32, workflow.stored_plan, 0, large))
    assert not body_surely_small(Dispatch("o" * 32, plan, 0, None)), "a plan read from a row: its bodies are walked"
    assert not body_surely_small(Dispatch("o" * 32, workflow.stored_plan, 0, None, members=(0, 1)))
