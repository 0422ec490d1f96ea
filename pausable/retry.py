"""One retry policy for every caller of the daemon, and for the Postgres LISTEN reconnect.

A `RetryPolicy` says which gRPC status codes are worth another attempt and
for how long (`patience`, None: no deadline); its `Backoff` hands out the
jittered exponential delays between attempts. The SDK (sync and async) and
the worker link run their calls through it; `server/notify.py` reconnects
its LISTEN connection with a policy that never gives up.

Why a helper and not gRPC's service-config `retryPolicy`: service-config
retries stop after at most 5 attempts and know no time budget, so a worker
that must outlast a daemon restart of any length would need a loop of its
own around them anyway; they also cannot tell a read (DEADLINE_EXCEEDED is
safe to retry) from a mutation, and they run under the channel, out of
sight of tests and of a Watch that resumes from its last seq. One loop in
Python does all of that the same way everywhere. gRPC's transparent retries
(a call that never left the client) stay on: they are gRPC's default.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import grpc

T = TypeVar("T")

# The call never reached the daemon, or the daemon shed it: safe to send
# again, since mutations carry a request_id or an attempt_id.
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
# A read that ran out of time may simply be sent again; a mutation may have been applied.
TRANSIENT_READS = TRANSIENT | {grpc.StatusCode.DEADLINE_EXCEEDED}


class Backoff:
    """Jittered exponential delays (`first` doubling to `cap`) within `patience` seconds.

    The patience starts at the first delay asked for, so a long quiet Watch
    still gets all of it when the daemon restarts; `reset()` after progress
    (e.g. a Watch event) gives a fresh one. `next_delay()` is None once
    waiting would overrun it, never when `patience` is None.
    """

    def __init__(
        self,
        patience: float | None,
        *,
        first: float = 0.05,
        cap: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.patience, self.first, self.cap, self.clock = patience, first, cap, clock
        self.reset()

    def reset(self) -> None:
        self.deadline: float | None = None
        self.delay = self.first

    def next_delay(self) -> float | None:
        if self.patience is not None:
            if self.deadline is None:
                self.deadline = self.clock() + self.patience
            if self.clock() + self.delay > self.deadline:
                return None
        wait = self.delay * random.uniform(0.5, 1.0)
        self.delay = min(self.delay * 2, self.cap)
        return wait

    def delays(self) -> Iterator[float]:
        """`next_delay()` until the patience is spent (endless without one)."""
        while (delay := self.next_delay()) is not None:
            yield delay


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures to retry (`codes`), for how long (`patience`; None: no deadline), how fast (`first`, `cap`)."""

    codes: frozenset[grpc.StatusCode] = TRANSIENT
    patience: float | None = 10.0
    first: float = 0.05
    cap: float = 1.0

    def backoff(self, clock: Callable[[], float] = time.monotonic) -> Backoff:
        """A fresh sequence of delays for one call (or one stream and its reconnects)."""
        return Backoff(self.patience, first=self.first, cap=self.cap, clock=clock)

    def retryable(self, error: BaseException) -> bool:
        """Whether `error` is a gRPC failure with one of `codes`."""
        code = getattr(error, "code", None)
        return isinstance(error, grpc.RpcError) and callable(code) and code() in self.codes

    def also(self, *codes: grpc.StatusCode) -> RetryPolicy:
        """The same policy retrying `codes` too (e.g. DEADLINE_EXCEEDED for reads)."""
        return replace(self, codes=self.codes | frozenset(codes))

    def within(self, patience: float | None) -> RetryPolicy:
        """The same policy with another patience (None: no deadline)."""
        return replace(self, patience=patience)

    def call(self, attempt: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
        """`attempt()` until it returns, raising the first failure that is not retryable or outlasts the patience."""
        backoff = self.backoff()
        while True:
            try:
                return attempt()
            except grpc.RpcError as error:
                delay = backoff.next_delay() if self.retryable(error) else None
                if delay is None:
                    raise
            sleep(delay)

    async def acall(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`call` for coroutines: awaits `attempt()` and sleeps on the event loop."""
        backoff = self.backoff()
        while True:
            try:
                return await attempt()
            except grpc.RpcError as error:
                delay = backoff.next_delay() if self.retryable(error) else None
                if delay is None:
                    raise
            await asyncio.sleep(delay)
