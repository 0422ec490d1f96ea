"""Per-identity limits, applied by the auth wrapper (server/auth.py) after a call is authenticated and authorized.

- `max_streams_per_identity`: Watch and WatchEvents streams one identity may hold
  open at once; a stream counts from its admission until it ends, fails, or is
  cancelled (a client that disconnects cancels it).
- `rpc_rate_per_identity` calls per second with a burst of
  `rpc_burst_per_identity` (a token bucket per identity): every call, a stream's
  opening included.

Over a limit is RESOURCE_EXHAUSTED, with a message naming the limit and its
setting. 0 turns a limit off. Exempt: health (never intercepted), callers when
no authentication mode is configured (everyone is one "anonymous", and
`max_concurrent_rpcs` still bounds the daemon), and workers (role worker only)
from the rate: a worker reports on every step it was given by the daemon, so its
rate follows the work dispatched, and refusing a report would only make the step
run again.

The counts live in this process: each replica limits on its own, so behind N
replicas an identity may reach N times each limit (README, Security).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The bucket table is pruned of full (idle) buckets when it grows past this many identities.
PRUNE_AT = 10_000


class OverLimit(Exception):
    """RESOURCE_EXHAUSTED; the message names the limit and the setting."""


@dataclass
class IdentityLimits:
    max_streams: int = 100
    rate: float = 1000.0
    burst: float = 2000.0
    clock: Callable[[], float] = time.monotonic
    streams: dict[str, int] = field(default_factory=dict)
    # identity → (tokens, when they were counted)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: object) -> IdentityLimits:
        rate = float(getattr(settings, "rpc_rate_per_identity", 0) or 0)
        burst = float(getattr(settings, "rpc_burst_per_identity", 0) or 0)
        return cls(
            max_streams=int(getattr(settings, "max_streams_per_identity", 0) or 0),
            rate=rate,
            burst=max(burst, 1.0) if rate > 0 else burst,
        )

    def take_call(self, identity: str) -> None:
        """Counts one call of `identity` against its rate; OverLimit when its bucket is empty."""
        if self.rate <= 0:
            return
        now = self.clock()
        tokens, then = self.buckets.get(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self.buckets[identity] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
            raise OverLimit(
                f"identity {identity!r} is over its call rate: rpc_rate_per_identity allows {self.rate:g} calls/s "
                f"with a burst of rpc_burst_per_identity={self.burst:g} "
                f"(PAUSABLE_RPC_RATE_PER_IDENTITY, PAUSABLE_RPC_BURST_PER_IDENTITY); retry in {wait:.2f}s"
            )
        self.buckets[identity] = (tokens - 1.0, now)
        if len(self.buckets) > PRUNE_AT:
            self._prune(now)

    def _prune(self, now: float) -> None:
        for name, (tokens, then) in list(self.buckets.items()):
            if tokens + (now - then) * self.rate >= self.burst:
                del self.buckets[name]

    def open_stream(self, identity: str) -> None:
        """Counts one more open stream of `identity`; OverLimit (and nothing counted) at the limit. Pair with close_stream."""
        if self.max_streams <= 0:
            return
        open_now = self.streams.get(identity, 0)
        if open_now >= self.max_streams:
            raise OverLimit(
                f"identity {identity!r} has {open_now} Watch/WatchEvents streams open, the most "
                f"max_streams_per_identity (PAUSABLE_MAX_STREAMS_PER_IDENTITY) allows; close one first"
            )
        self.streams[identity] = open_now + 1

    def close_stream(self, identity: str) -> None:
        if self.max_streams <= 0:
            return
        left = self.streams.get(identity, 0) - 1
        if left > 0:
            self.streams[identity] = left
        else:
            self.streams.pop(identity, None)
