"""The asyncio SDK against a fake channel: which codes are retried, for how long, and how watch() reconnects."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from pausable.clients import AsyncClient, FailedPrecondition, InvalidArgument, NotFound, PausableError, Unavailable, connect
from pausable.clients.common import channel_credentials
from pausable.clients.errors import DeadlineExceeded
from pausable.retry import Backoff, RetryPolicy
from pausable.v1 import operation_pb2 as pb

ID = "a" * 32
Script = list[grpc.StatusCode | Any]


def failure(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"fake {code.name}")


class FakeChannel:
    """Stands in for a grpc.aio channel under the generated stub: each method answers from a script.

    A script entry is a StatusCode (that attempt fails with it) or a reply;
    Watch entries are lists of events, optionally ending in a StatusCode.
    """

    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.attempts: dict[str, list[tuple[Any, Any]]] = defaultdict(list)

    def _next(self, method: str, request: Any, metadata: Any) -> Any:
        self.attempts[method].append((request, metadata))
        script = self.scripts[method]
        return script.pop(0) if len(script) > 1 else script[0]

    def unary_unary(self, path: str, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        method = path.rsplit("/", 1)[1]

        async def call(request: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            outcome = self._next(method, request, metadata)
            if isinstance(outcome, grpc.StatusCode):
                raise failure(outcome)
            return outcome

        return call

    def unary_stream(self, path: str, *args: Any, **kwargs: Any) -> Callable[..., Any]:
        method = path.rsplit("/", 1)[1]
        channel = self

        class Stream:
            def __init__(self, request: Any, metadata: Any) -> None:
                self.items = channel._next(method, request, metadata)

            async def __aiter__(self) -> AsyncIterator[Any]:
                for item in self.items:
                    if isinstance(item, grpc.StatusCode):
                        raise failure(item)
                    yield item

            def cancel(self) -> bool:
                return True

        return lambda request, timeout=None, metadata=None: Stream(request, metadata)

    def stream_unary(self, *args: Any, **kwargs: Any) -> None:
        return None

    stream_stream = stream_unary

    async def close(self) -> None:
        pass


def fake_client(scripts: dict[str, Script], **options: Any) -> tuple[AsyncClient, FakeChannel]:
    channel = FakeChannel(scripts)
    return AsyncClient("fake", channel=channel, token="s3cret", **options), channel  # type: ignore[arg-type]


def operation(state: int = pb.OPERATION_STATE_RUNNING, seq: int = 1) -> pb.Operation:
    return pb.Operation(id=ID, state=state, last_seq=seq)


def event(seq: int, state: int = pb.OPERATION_STATE_RUNNING) -> pb.WatchResponse:
    return pb.WatchResponse(event=pb.OperationEvent(operation_id=ID, seq=seq, operation=operation(state, seq)))


# -- unit: the retry policy ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
    ],
)
@pytest.mark.parametrize("method", ["GetOperation", "Pause", "Resume", "Cancel"])
def test_caller_errors_are_raised_typed_after_one_attempt(code: grpc.StatusCode, error: type[PausableError], method: str) -> None:
    async def main() -> None:
        client, channel = fake_client({method: [code]})
        call = {"GetOperation": client.get, "Pause": client.pause, "Resume": client.resume, "Cancel": client.cancel}[method]
        with pytest.raises(error) as raised:
            await call(ID)
        assert raised.value.code == code and raised.value.message == f"fake {code.name}"
        assert len(channel.attempts[method]) == 1

    asyncio.run(main())


def test_unavailable_and_resource_exhausted_are_retried_with_the_same_request() -> None:
    async def main() -> None:
        reply = pb.PauseResponse(operation=operation(pb.OPERATION_STATE_PAUSE_REQUESTED))
        client, channel = fake_client(
            {"Pause": [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, reply]}
        )
        assert (await client.pause(ID)).state == pb.OPERATION_STATE_PAUSE_REQUESTED
        attempts = channel.attempts["Pause"]
        assert len(attempts) == 4
        assert len({request.request_id for request, _ in attempts}) == 1, "a retry repeats the request_id, so it applies once"
        assert all(metadata == (("authorization", "Bearer s3cret"),) for _, metadata in attempts)

    asyncio.run(main())


def test_deadline_exceeded_is_retried_on_reads_only() -> None:
    async def main() -> None:
        got = pb.GetOperationResponse(operation=operation())
        client, channel = fake_client(
            {"GetOperation": [grpc.StatusCode.DEADLINE_EXCEEDED, got], "Cancel": [grpc.StatusCode.DEADLINE_EXCEEDED]}
        )
        assert (await client.get(ID)).id == ID
        assert len(channel.attempts["GetOperation"]) == 2
        with pytest.raises(DeadlineExceeded):
            await client.cancel(ID)
        assert len(channel.attempts["Cancel"]) == 1

    asyncio.run(main())


def test_retrying_gives_up_after_retry_seconds() -> None:
    async def main() -> None:
        client, channel = fake_client({"ListWorkflows": [grpc.StatusCode.UNAVAILABLE]}, retry_seconds=0.3)
        with pytest.raises(Unavailable):
            await client.workflows()
        assert 2 <= len(channel.attempts["ListWorkflows"]) < 20

    asyncio.run(main())


def test_watch_reconnects_from_the_last_seq_without_repeat_or_gap() -> None:
    async def main() -> None:
        client, channel = fake_client(
            {
                "Watch": [
                    [event(1), event(2), grpc.StatusCode.UNAVAILABLE],
                    [grpc.StatusCode.UNAVAILABLE],
                    [event(2), event(3), event(4, pb.OPERATION_STATE_SUCCEEDED)],
                ]
            }
        )
        seqs = [e.seq async for e in client.watch(ID)]
        assert seqs == [1, 2, 3, 4]
        assert [request.after_seq for request, _ in channel.attempts["Watch"]] == [0, 2, 2]

    asyncio.run(main())


def test_watch_raises_what_a_reconnect_cannot_fix() -> None:
    async def main() -> None:
        client, channel = fake_client({"Watch": [[event(1), grpc.StatusCode.NOT_FOUND]]})
        seen = []
        with pytest.raises(NotFound):
            async for e in client.watch(ID):
                seen.append(e.seq)
        assert seen == [1] and len(channel.attempts["Watch"]) == 1

    asyncio.run(main())


def test_backoff_is_jittered_capped_and_bounded() -> None:
    now = [0.0]
    backoff = Backoff(3.0, clock=lambda: now[0])
    delays = []
    while (delay := backoff.next_delay()) is not None:
        delays.append(delay)
        now[0] += delay
    assert 0.025 <= delays[0] <= 0.05 and max(delays) <= 1.0 and sum(delays) <= 3.0
    backoff.reset()
    assert backoff.next_delay() is not None


def test_a_policy_without_patience_never_gives_up() -> None:
    now = [0.0]
    backoff = RetryPolicy(patience=None, cap=2.0).backoff(clock=lambda: now[0])
    for _ in range(1000):
        delay = backoff.next_delay()
        assert delay is not None and delay <= 2.0
        now[0] += 3600


def test_tls_options() -> None:
    assert channel_credentials(None) is None and channel_credentials(False) is None
    assert isinstance(channel_credentials(True), grpc.ChannelCredentials)
    with pytest.raises(TypeError):
        channel_credentials("yes")  # type: ignore[arg-type]
    sync = connect("127.0.0.1:1", token="t", tls=True)
    assert sync.metadata == (("authorization", "Bearer t"),)
    sync.close()
