"""The asyncio SDK against the real daemon: start, pause, resume, wait, and watch() across a cut connection.

The retry policy against a fake channel is in tests/unit/test_sdk_retries.py.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from support.stack import Stack, step_completed

from pausable.clients import (
    AsyncClient,
    Client,
    Event,
    EventType,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Operation,
    State,
)
from pausable.v1 import operation_pb2 as pb


def test_async_client_start_pause_resume_wait(stack: Stack) -> None:
    async def main() -> None:
        async with AsyncClient(stack.target, token="ignored-by-the-daemon") as client:
            assert {"demo.etl", "demo.tapped"} <= {w.name for w in await client.workflows()}
            expected = await (await client.start("demo.etl", {"rows": 12, "step_seconds": 0.0})).wait(timeout=60)

            op = await client.start("demo.etl", {"rows": 12, "step_seconds": 0.3})
            async for e in op.watch():
                if step_completed(0)(e):
                    break
            await op.pause()
            assert op.state == "PAUSE_REQUESTED"
            async for e in op.watch(after_seq=op.proto.last_seq):
                if e.operation.state == pb.OPERATION_STATE_PAUSED:
                    break
            assert op.state == "PAUSED"
            assert (await op.refresh()).state == "PAUSED" and op.result["log"] == [
                f"T{n}" for n in range(1, op.proto.current_step + 1)
            ]
            assert (await client.list(states=[pb.OPERATION_STATE_PAUSED], page_size=1000)).operations
            await op.resume()
            assert op.state == "RUNNING"
            assert await op.wait(timeout=60) == expected
            assert op.done and op.state == "SUCCEEDED"

            with pytest.raises(NotFound):
                await client.get("0" * 32)
            with pytest.raises(InvalidArgument):
                await client.get("not-an-id")
            with pytest.raises(FailedPrecondition):
                await op.resume()

    asyncio.run(main())


class CuttableProxy:
    """A TCP proxy in front of the daemon whose connections the test cuts, as a network failure would."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.connections = 0
        self.live: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.connections += 1
        self.live |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        self.live -= {writer, up_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def cut(self) -> None:
        for writer in list(self.live):
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        self.server.close()
        await self.server.wait_closed()


def test_async_watch_survives_a_cut_connection_without_repeat_or_gap(stack: Stack) -> None:
    async def main() -> None:
        proxy = CuttableProxy(stack.target)
        target = await proxy.start()
        try:
            async with AsyncClient(target) as client:
                op = await client.start("demo.etl", {"rows": 5, "step_seconds": 0.3})
                seqs: list[int] = []
                cut = False
                async for e in client.watch(op.id):
                    seqs.append(e.seq)
                    if not cut and step_completed(0)(e):
                        proxy.cut()
                        cut = True
                final = (await op.refresh()).proto
        finally:
            await proxy.close()
        assert cut and proxy.connections >= 2, "the stream was cut and reopened"
        assert seqs == list(range(1, final.last_seq + 1))
        assert final.state == pb.OPERATION_STATE_SUCCEEDED

    asyncio.run(main())


def test_watch_yields_typed_events_with_plain_names(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 0})
    events = list(op.watch())
    assert all(isinstance(e, Event) for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    first, last = events[0], events[-1]
    assert first.type is EventType.CREATED and first.type.name == "CREATED" and str(first.type) == "CREATED"
    assert last.type is EventType.SUCCEEDED and last.state is State.SUCCEEDED and last.state == "SUCCEEDED"
    assert last.type == pb.EVENT_TYPE_SUCCEEDED, "the enums are the proto's numbers"
    assert isinstance(last.time, datetime) and last.time.tzinfo is not None
    assert isinstance(last.raw, pb.OperationEvent) and last.raw.seq == last.seq
    assert last.operation.id == op.id and last.operation.result == op.result
    assert last.to_dict()["type"] == "SUCCEEDED" and last.to_dict()["operation"]["state"] == "SUCCEEDED"


def test_step_numbers_count_from_one_as_the_cli_shows_them(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 0})
    numbers = [(e.operation.step, e.operation.total_steps) for e in op.watch() if e.type is EventType.STEP_COMPLETED]
    assert numbers == [(2, 5), (3, 5), (4, 5), (5, 5)], "after step 1/5 completes, step 2/5 runs"
    assert (op.step, op.proto.step_number, op.current_step) == (5, 5, 5), "done: step 5/5; the 0-based index is past it"
    assert op.to_dict()["step"] == 5 and op.to_dict()["total_steps"] == 5


def test_step_numbers_of_a_tappable_workflow_count_the_users_steps(client: Client) -> None:
    op = client.start("demo.tapped", 1)
    numbers = [(e.operation.step, e.operation.total_steps) for e in op.watch() if e.type is EventType.STEP_COMPLETED]
    assert numbers == [(2, 4), (3, 4), (4, 4), (4, 4)], "4 plain tasks: tappable's pause points and finish are no steps"
    assert (op.step, op.total_steps) == (4, 4)


def test_client_and_handle_commands_return_the_same_type(client: Client) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 1})
    paused = client.pause(op.id)
    assert isinstance(paused, Operation) and paused.state is State.PAUSE_REQUESTED
    assert isinstance(op.cancel(), Operation) and op.state in (State.CANCEL_REQUESTED, State.CANCELLED)
    assert type(client.get(op.id)) is type(op.refresh()) is Operation
