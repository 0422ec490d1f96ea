"""The pure parts of the limits: JSON depth, result checks, schema patterns on RE2, the decode guard's message."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pausable.server import limits
from pausable.server.errors import InvalidArgument


def nested(levels: int, kind: str = "object") -> Any:
    data: Any = 1
    for _ in range(levels):
        data = {"a": data} if kind == "object" else [data]
    return data


@pytest.mark.parametrize(("data", "depth"), [(1, 0), ("x", 0), ({}, 1), ([], 1), ({"a": [1, {"b": 2}]}, 3), (nested(50), 50)])
def test_json_depth(data: Any, depth: int) -> None:
    assert limits.json_depth(data) == depth


def test_json_depth_stops_early_and_never_recurses() -> None:
    assert limits.json_depth(nested(100_000, "list"), stop_after=32) == 33
    assert limits.json_depth(nested(5_000)) == 5_000


def test_result_problem_just_below_and_above() -> None:
    assert limits.result_problem(json.dumps(nested(32))) is None
    assert limits.result_problem(json.dumps(nested(33)))[0] == limits.RESULT_TOO_DEEP  # type: ignore[index]
    assert limits.result_problem("[" * 600_000 + "]" * 600_000)[0] == limits.RESULT_TOO_LARGE  # type: ignore[index]
    assert limits.result_problem("[" * 5_000 + "]" * 5_000)[0] == limits.RESULT_TOO_DEEP  # type: ignore[index]
    size = limits.current.max_result_bytes
    assert limits.result_problem(json.dumps("x" * (size - 2))) is None
    assert limits.result_problem(json.dumps("x" * (size - 1)))[0] == limits.RESULT_TOO_LARGE  # type: ignore[index]
    with pytest.raises(InvalidArgument):
        limits.result_problem("{oops")


def test_parse_json_names_the_setting() -> None:
    with pytest.raises(InvalidArgument, match="max_workflow_bytes"):
        limits.parse_json("plan_json", "[" + "1," * 100 + "1]", 50, "max_workflow_bytes")
    with pytest.raises(InvalidArgument, match="max_json_depth"):
        limits.parse_json("plan_json", "[" * 3000 + "]" * 3000, 1 << 20, "max_workflow_bytes")


def test_schemas_match_patterns_in_linear_time() -> None:
    from pausable.server import schemas

    began = time.monotonic()
    schema = {"properties": {"s": {"pattern": "^(a+)+$"}}, "patternProperties": {"^(b+)+$": {}}, "additionalProperties": False}
    assert schemas.first_error(schema, {"s": "a" * 10_000 + "!"}) is not None
    assert schemas.first_error(schema, {"b" * 10_000 + "!": 1}) is not None
    assert schemas.first_error(schema, {"s": "aaa", "bb": 1}) is None
    assert time.monotonic() - began < 1.0
    assert sorted(schemas.patterns({"allOf": [{"pattern": "x"}, {"patternProperties": {"y": {"pattern": "z"}}}]})) == [
        "x",
        "y",
        "z",
    ]
    with pytest.raises(InvalidArgument, match="RE2"):
        schemas.check_schema("w", {"pattern": "(?=a)"})


def test_a_failing_publish_never_fails_or_holds_the_commit() -> None:
    """BatchingThread answers its callers first; an error in `delivered` (the publish) is logged, not raised."""
    import asyncio

    from pausable.server.batching import BatchingThread

    published: list[Any] = []

    def deliver(outcomes: list[Any]) -> None:
        published.append(outcomes)
        raise RuntimeError("a watcher's value cannot be encoded")

    async def scenario() -> list[Any]:
        thread: BatchingThread[int] = BatchingThread(
            "test", lambda items: [(item * 2, None) for item in items], delivered=deliver
        )
        try:
            return await asyncio.wait_for(asyncio.gather(*(thread.submit(i) for i in range(5))), 5)
        finally:
            thread.close()

    assert asyncio.run(scenario()) == [0, 2, 4, 6, 8]
    assert published


def test_the_store_wraps_its_publisher() -> None:
    from pausable.server.store import safe_publisher

    def broken(events: list[Any]) -> None:
        raise ValueError("boom")

    safe_publisher(broken)([])
