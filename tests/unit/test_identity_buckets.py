"""The per-identity limits' arithmetic, on a fake clock (server/identity_limits.py)."""

from __future__ import annotations

import pytest

from pausable.config import Settings
from pausable.server.identity_limits import IdentityLimits, OverLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_a_token_bucket_per_identity() -> None:
    clock = Clock()
    limits = IdentityLimits(max_streams=0, rate=2.0, burst=3.0, clock=clock)
    for _ in range(3):
        limits.take_call("alice")
    with pytest.raises(OverLimit, match="rpc_rate_per_identity"):
        limits.take_call("alice")
    limits.take_call("bob")  # another identity has its own bucket
    clock.now += 0.5  # one token back at 2/s
    limits.take_call("alice")
    with pytest.raises(OverLimit):
        limits.take_call("alice")
    clock.now += 100  # refills up to the burst, no further
    for _ in range(3):
        limits.take_call("alice")
    with pytest.raises(OverLimit):
        limits.take_call("alice")


def test_streams_are_counted_while_open() -> None:
    limits = IdentityLimits(max_streams=2, rate=0)
    limits.open_stream("alice")
    limits.open_stream("alice")
    with pytest.raises(OverLimit, match="max_streams_per_identity"):
        limits.open_stream("alice")
    limits.open_stream("bob")
    limits.close_stream("alice")
    limits.open_stream("alice")
    limits.close_stream("alice")
    limits.close_stream("alice")
    limits.close_stream("bob")
    assert limits.streams == {}


def test_zero_turns_a_limit_off() -> None:
    limits = IdentityLimits(max_streams=0, rate=0)
    for _ in range(10_000):
        limits.take_call("alice")
        limits.open_stream("alice")
    assert limits.streams == {} and limits.buckets == {}


def test_from_settings_defaults() -> None:
    limits = IdentityLimits.from_settings(Settings())
    assert (limits.max_streams, limits.rate, limits.burst) == (100, 1000.0, 2000.0)
    assert IdentityLimits.from_settings(Settings(rpc_rate_per_identity=5, rpc_burst_per_identity=0)).burst == 1.0
