"""The worker's mirror of the stop flags against a real Redis: the daemon's changes arrive without a read per step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pausable.cli.launch import RedisServer
from pausable.server.flags import StopFlags
from pausable.server.states import State
from pausable.workers.stop_flags import StopFlagMirror

A, B = "a" * 32, "b" * 32


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as running:
        yield running


def follow(server: RedisServer, operation_id: str, state: State) -> None:
    async def run() -> None:
        flags = StopFlags(server.url)
        await flags.follow(operation_id, state)
        await flags.close()

    asyncio.run(run())


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_flags_set_before_and_after_the_mirror_starts_are_seen_and_cleared(server: RedisServer) -> None:
    follow(server, A, State.PAUSE_REQUESTED)
    mirror = StopFlagMirror(server.url)
    assert mirror.wait_in_sync(10)
    assert mirror.flagged(A) and not mirror.flagged(B)
    follow(server, B, State.CANCEL_REQUESTED)
    until(lambda: mirror.flagged(B))
    follow(server, A, State.PAUSED)
    until(lambda: not mirror.flagged(A))
    assert mirror.flagged(B)


def test_without_redis_every_operation_counts_as_flagged_and_the_mirror_resyncs_after_a_restart(server: RedisServer) -> None:
    mirror = StopFlagMirror(server.url)
    assert mirror.wait_in_sync(10)
    assert not mirror.flagged(A)
    server.stop()
    until(lambda: mirror.flagged(A))  # unknown: the worker asks the daemon, which decides
    server.start()
    follow(server, B, State.PAUSE_REQUESTED)
    assert mirror.wait_in_sync(10)
    until(lambda: mirror.flagged(B))
    assert not mirror.flagged(A)


def test_a_stale_local_flag_is_forgotten(server: RedisServer) -> None:
    follow(server, A, State.PAUSE_REQUESTED)
    mirror = StopFlagMirror(server.url)
    assert mirror.wait_in_sync(10)
    mirror.forget(A)
    assert not mirror.flagged(A)


def test_a_burst_of_stops_sets_every_flag(server: RedisServer) -> None:
    """More concurrent updates than the daemon's connections: each waits for one instead of being refused."""
    import redis

    from pausable import flags

    ids = [f"{index:032x}" for index in range(300)]

    async def run() -> None:
        stop = StopFlags(server.url)
        await asyncio.gather(*(stop.follow(operation_id, State.PAUSE_REQUESTED) for operation_id in ids))
        await stop.close()

    asyncio.run(run())
    client = redis.Redis.from_url(server.url)
    assert sum(client.exists(flags.key(operation_id)) for operation_id in ids) == len(ids)


def test_updates_of_one_flag_take_effect_in_the_order_they_were_made(server: RedisServer) -> None:
    """Concurrent updates share pipelines: the last one made is the one that stays, also across a script flush."""
    import redis

    from pausable import flags

    client = redis.Redis.from_url(server.url)

    async def run() -> None:
        stop = StopFlags(server.url)
        for round_ in range(20):
            if round_ % 5 == 0:
                client.script_flush()  # as after a Redis restart: the clear script is sent again
            last = State.RUNNING if round_ % 2 else State.PAUSE_REQUESTED
            states = [State.PAUSE_REQUESTED, State.RUNNING, State.CANCEL_REQUESTED, State.PAUSED, last]
            await asyncio.gather(*(stop.follow(A, state) for state in states))
            assert bool(client.exists(flags.key(A))) == (last is State.PAUSE_REQUESTED), round_
        await stop.close()

    asyncio.run(run())
