"""Per-identity limits (server/identity_limits.py) from a plain gRPC client: open Watch/WatchEvents streams and the call rate.

One daemon with an HS256 secret, `max_streams_per_identity=2`, and a rate of 5 calls/s with a burst of 10.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest

from pausable.cli.launch import DaemonProcess, RedisServer
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

SECRET = "identity-limits-secret-long-enough-for-hs256-0123456789"


def bearer(sub: str, roles: list[str]) -> tuple[tuple[str, str], ...]:
    claims = {"sub": sub, "roles": roles, "exp": int(time.time()) + 600}
    return (("authorization", f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"),)


def poll(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(every)


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    folder: Path = tmp_path_factory.mktemp("identity-limits")
    redis = RedisServer(folder / "redis").start()
    daemon = DaemonProcess(
        f"sqlite+aiosqlite:///{folder / 'pausable.db'}",
        redis.url,
        folder / "daemon.log",
        jwt_secret=SECRET,
        max_streams_per_identity="2",
        rpc_rate_per_identity="5",
        rpc_burst_per_identity="10",
    )
    try:
        daemon.start()
        with grpc.insecure_channel(daemon.target) as opened:
            yield opened
    finally:
        daemon.stop()
        redis.stop()


def open_stream(channel: grpc.Channel, who: Any) -> Any:
    """A WatchEvents stream, returned once the daemon has admitted it (it sends its headers then), or its error."""
    call = operation_pb2_grpc.OperationServiceStub(channel).WatchEvents(pb.WatchEventsRequest(), metadata=who, timeout=60)
    call.initial_metadata()  # blocks until the headers or the status arrive
    return call


def refused(call: Any) -> grpc.StatusCode | None:
    """The status of a stream that already ended, else None (still open)."""
    return call.code() if call.done() else None


@pytest.mark.timeout(120)
def test_streams_per_identity(channel: grpc.Channel) -> None:
    rita, rob = bearer("rita", ["reader"]), bearer("rob", ["reader"])
    first, second = open_stream(channel, rita), open_stream(channel, rita)
    assert refused(first) is None and refused(second) is None
    third = open_stream(channel, rita)
    poll(third.done, 10, "the third stream of one identity ends")
    assert third.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, third.details()
    assert "max_streams_per_identity" in third.details() and "rita" in third.details()
    other = open_stream(channel, rob)  # another identity still can
    assert refused(other) is None
    # A stream the client cancels (as when it disconnects) stops counting.
    first.cancel()
    reopened: list[Any] = []

    def reopen() -> bool:
        call = open_stream(channel, rita)
        if refused(call) is None:
            reopened.append(call)
            return True
        assert call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, call.details()
        return False

    poll(reopen, 20, "a stream of rita admitted again after one was cancelled", every=0.25)
    for call in (second, other, *reopened):
        call.cancel()


@pytest.mark.timeout(120)
def test_rate_per_identity(channel: grpc.Channel) -> None:
    ops = operation_pb2_grpc.OperationServiceStub(channel)
    carl, dora = bearer("carl", ["reader"]), bearer("dora", ["reader"])

    def call(who: Any) -> grpc.StatusCode:
        try:
            ops.ListWorkflows(pb.ListWorkflowsRequest(), metadata=who, timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            assert "rpc_rate_per_identity" in (error.details() or "")
            return error.code()
        return grpc.StatusCode.OK

    # A burst over 10 at once and 5/s is refused within a few dozen back-to-back calls.
    codes = [call(carl) for _ in range(40)]
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes
    assert codes[:5] == [grpc.StatusCode.OK] * 5
    assert call(dora) == grpc.StatusCode.OK  # another identity has its own bucket
    # The bucket refills: allowed again within a second or so.
    poll(lambda: call(carl) == grpc.StatusCode.OK, 10, "carl allowed again after the bucket refilled", every=0.1)


@pytest.mark.timeout(120)
def test_workers_are_exempt_from_the_rate(channel: grpc.Channel) -> None:
    workers = worker_pb2_grpc.WorkerServiceStub(channel)
    worker = bearer("worker-1", ["worker"])
    for _ in range(30):  # three times the burst: never RESOURCE_EXHAUSTED
        try:
            workers.RenewLeases(worker_pb2.RenewLeasesRequest(), metadata=worker, timeout=10)
        except grpc.RpcError as error:
            assert error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
