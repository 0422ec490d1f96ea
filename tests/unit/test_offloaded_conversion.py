"""Large stored values (over offload_json_bytes) are parsed and become messages in a thread, small ones on the loop.

"Not on the loop" is shown by events, not timings (tests/support/loop_probe.OffLoop): the conversion of a large
value waits until a coroutine on the loop has run, which on the loop itself could never happen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.loop_probe import OffLoop
from support.started import started_operation
from support.wire import decoded

from pausable.jsonvalue import to_value
from pausable.server import convert, engine, limits, reads
from pausable.server.dispatch import plan_for
from pausable.server.domain import Event, Operation, Page, StepReport, Workflow
from pausable.server.encoded import Encoded
from pausable.server.hub import EventHub
from pausable.server.operations import OperationService
from pausable.server.states import EventType, State
from pausable.server.store import Store
from pausable.server.watching import Watching
from pausable.v1 import operation_pb2 as pb

LARGE = {"rows": [{"name": f"row-{i}", "value": i} for i in range(20_000)]}  # about 600 kB of JSON
SMALL = {"rows": 3}


def operation(result: Any, input_json: str | None = None) -> Operation:
    return Operation(
        "0" * 32, "wf", State.RUNNING, 1, 3, "s", 0.5, "", result, None, "me", {}, 1.0, 1.0, None, 2,
        input_json=input_json,
    )  # fmt: skip


def event(result: Any, seq: int = 1) -> Event:
    snapshot = {
        "id": "0" * 32, "workflow": "wf", "state": "RUNNING", "current_step": 1, "total_steps": 3, "current_step_name": "s",
        "progress": 0.5, "progress_message": "", "result": result, "error": None, "requester": "me", "labels": {},
        "create_time": 1.0, "update_time": 1.0, "end_time": None, "last_seq": 2,
    }  # fmt: skip
    return Event("0" * 32, seq, EventType.STEP_COMPLETED, "", 1.0, snapshot)


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> Iterator[OffLoop]:
    """set_value, probed, as convert builds a value in place and convert.value_bytes builds the pieces of a large one:
    the building of LARGE (in place) or of its first row (its first piece) waits for the loop to run."""
    spy = OffLoop(convert.set_value, lambda _target, data: data is LARGE or data is LARGE["rows"][0])
    monkeypatch.setattr(convert, "set_value", spy)
    yield spy


def test_size_estimate_stops_early_and_is_close() -> None:
    assert not limits.json_bytes_over(SMALL, 100)
    assert limits.json_bytes_over("x" * 101, 100) and not limits.json_bytes_over("x" * 90, 100)
    assert limits.json_bytes_over(list(range(10_000_000)), 8192)  # judged by the list's length, not its items
    assert limits.json_bytes_over(LARGE, limits.current.offload_json_bytes)
    assert convert.heavy(operation(LARGE)) and convert.heavy(operation(None, input_json="1" * 9000))
    assert not convert.heavy(operation(SMALL, input_json='{"a": 1}'))
    for data in (SMALL, LARGE, "x" * 9000, ["x" * 100] * 100, {"k" * 9000: 1}, [[[]]] * 3000, None, 1.5):
        assert limits.value_bytes_over(to_value(data), 8192) == (len(json.dumps(data)) > 8192), data


def test_a_large_operation_is_serialized_in_a_thread(conversions: OffLoop) -> None:
    reply, loop_thread = conversions.run(convert.reply(operation(LARGE), pb.GetOperationResponse))
    assert conversions.off_the_loop(loop_thread) and isinstance(reply, Encoded)
    assert reply.message.operation.id == "0" * 32 and not reply.message.operation.HasField("result")
    message = decoded(reply, pb.GetOperationResponse).operation
    assert len(message.result.struct_value.fields["rows"].list_value.values) == 20_000


def test_a_small_operation_converts_on_the_loop(conversions: OffLoop) -> None:
    reply, loop_thread = conversions.run(convert.reply(operation(SMALL, input_json="[1]"), pb.GetOperationResponse))
    assert conversions.threads == [loop_thread, loop_thread]  # input and result: no thread hop
    assert isinstance(reply, pb.GetOperationResponse)
    assert reply.operation.result.struct_value.fields["rows"].number_value == 3


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_a_serialized_reply_is_the_reply_built_in_place(size: Any) -> None:
    """The bytes of an Encoded reply (values spliced in as fields of their own) parse to the message built in place,
    and protobuf writes that message back to the same bytes as an operation made in one piece."""
    stored = Operation(
        "0" * 32, "wf", State.FAILED, 1, 3, "s", 0.5, "half", size, {"code": "E", "message": "m", "step": 1},
        "me", {"team": "a"}, 1.0, 2.0, 3.0, 7, input_json=json.dumps(size),
    )  # fmt: skip
    in_place = pb.GetOperationResponse()
    convert.operation_into(in_place.operation, stored)
    spliced = convert.encoded_reply(stored, pb.GetOperationResponse)
    assert pb.GetOperationResponse.FromString(spliced.data) == in_place
    assert len(spliced.data) == in_place.ByteSize()
    event_ = dataclasses.replace(event(size, 4), cursor="c-4", actor="me")
    watch = convert.encoded_event(event_, pb.WatchResponse())
    assert pb.WatchResponse.FromString(watch.data) == convert.event_to_pb(event_)
    feed = convert.encoded_event(event_, pb.WatchEventsResponse(cursor="c-4"))
    assert pb.WatchEventsResponse.FromString(feed.data) == convert.feed_response(event_)


class OneOperation:
    """The engine and store reads GetOperation and Watch make, for one operation with a large result."""

    postgres = False

    def __init__(self) -> None:
        self.events = [event(SMALL, 1), event(LARGE, 2)]

    async def get(self, operation_id: str) -> Operation:
        return operation(LARGE)

    async def get_operation(self, operation_id: str) -> Operation:
        return self.events[-1].operation

    async def events_after(self, operation_id: str, after_seq: int, limit: int) -> Page[Event]:
        found = [e for e in self.events if e.seq > after_seq]
        return Page(found[:limit], more=len(found) > limit)


def test_get_operation_with_a_large_result_leaves_the_loop_free(conversions: OffLoop) -> None:
    service = OperationService(OneOperation(), None)  # type: ignore[arg-type]
    request = pb.GetOperationRequest(operation_id="0" * 32)
    reply, loop_thread = conversions.run(service.GetOperation(request, None))  # type: ignore[arg-type]
    assert conversions.off_the_loop(loop_thread)
    rows = decoded(reply, pb.GetOperationResponse).operation.result.struct_value.fields["rows"].list_value.values
    assert rows[-1].struct_value.fields["value"].number_value == 19_999


def test_watch_replays_a_large_event_off_the_loop(conversions: OffLoop) -> None:
    async def replay() -> list[int]:
        seqs = []
        async for response in Watching(OneOperation(), EventHub()).follow("0" * 32, 0):  # type: ignore[arg-type]
            seq = decoded(response, pb.WatchResponse).event.seq
            seqs.append(seq)
            if seq == 2:
                break
        return seqs

    seqs, loop_thread = conversions.run(replay())
    assert seqs == [1, 2]
    assert not conversions.blocked
    assert conversions.threads[0] == loop_thread and loop_thread not in conversions.threads[1:]  # small, then large


def test_a_live_large_event_is_converted_once_off_the_loop_for_every_watcher(conversions: OffLoop) -> None:
    async def live() -> list[list[int]]:
        store, hub = OneOperation(), EventHub()
        store.events = [event(SMALL, 1)]
        watching = Watching(store, hub)  # type: ignore[arg-type]
        streams = [watching.follow("0" * 32, 0) for _ in range(3)]
        seen: list[list[int]] = [[] for _ in streams]
        for stream, seqs in zip(streams, seen, strict=True):
            # Replayed from the store; then each waits for live events.
            seqs.append(decoded(await anext(stream), pb.WatchResponse).event.seq)
        pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
        await asyncio.sleep(0)
        conversions.threads.clear()
        conversions.large_calls = 0
        hub.publish([event(LARGE, 2)])  # the commit hook: converting here would wait WAIT seconds for the line below
        conversions.loop_ran.set()
        for future, seqs in zip(pending, seen, strict=True):
            seqs.append(decoded(await future, pb.WatchResponse).event.seq)
        for stream in streams:
            await stream.aclose()
        return seen

    seen, loop_thread = asyncio.run(_with_thread(live))
    assert seen == [[1, 2]] * 3
    assert not conversions.blocked
    assert conversions.large_calls == 1, "one conversion for three watchers"
    assert len(set(conversions.threads)) == 1 and conversions.threads[0] != loop_thread


async def _with_thread(scenario: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    return await scenario(), threading.get_ident()


def test_the_store_parses_a_large_stored_result_in_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = reads.operation_of

    def spy(row: Any, with_input: bool = False) -> Operation:
        threads.append(threading.get_ident())
        return real(row, with_input)

    async def scenario() -> tuple[list[Operation], int]:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            operation_id, token = await started_operation(store)
            found = []
            monkeypatch.setattr(reads, "operation_of", spy)
            for step, result in enumerate((SMALL, LARGE)):
                report = StepReport(operation_id, step, json.dumps(result), continued=True, step_token=token)
                await store.checkpoints([report])
                found.append(await store.get_operation(operation_id))
            return found, threading.get_ident()
        finally:
            await store.close()

    (small, large), loop_thread = asyncio.run(scenario())
    assert (small.result, large.result) == (SMALL, LARGE)
    assert threads == [loop_thread, threads[1]] and threads[1] != loop_thread


class Starts:
    """The engine calls StartOperation makes; the operation it starts has a large input."""

    async def workflow(self, name: str) -> Workflow:
        return Workflow(name, plan_for(["a", "b", "c"]))

    async def start(self, workflow_name: str, input_json: str, **_fields: Any) -> tuple[Operation, bool]:
        return operation(None, input_json=input_json), True


def test_start_operation_replies_with_a_large_input_off_the_loop(conversions: OffLoop) -> None:
    service = OperationService(Starts(), None)  # type: ignore[arg-type]
    large = to_value(LARGE)
    conversions.threads.clear()
    conversions.large = lambda _target, data: data == LARGE["rows"][0]  # the first piece of the input parsed from its text
    request = pb.StartOperationRequest(workflow="wf", input=large)
    reply, loop_thread = conversions.run(service.StartOperation(request, None))  # type: ignore[arg-type]
    assert conversions.off_the_loop(loop_thread)
    response = decoded(reply, pb.StartOperationResponse)
    assert response.operation.input == large and json.loads(response.operation.input_json) == LARGE


def test_the_request_hash_of_a_large_input_is_computed_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.request_hash
    hashes = OffLoop(real, lambda _workflow, input_json, _labels: limits.current.offload_json_bytes < len(input_json))
    monkeypatch.setattr(engine, "request_hash", hashes)
    small, _ = hashes.run(engine.request_hash_of("wf", "[1]", {}))
    (large, loop_thread) = hashes.run(engine.request_hash_of("wf", json.dumps(LARGE), {"a": "b"}))
    assert small == real("wf", "[1]", {}) and large == real("wf", json.dumps(LARGE), {"a": "b"})
    assert hashes.threads[0] == loop_thread and hashes.threads[1] != loop_thread and not hashes.blocked


def test_a_checked_result_is_parsed_once_for_every_later_event_and_read(tmp_path: Path) -> None:
    """The value limits.checked_result parsed is the one every later snapshot and GetOperation carries (not parsed
    again: each json.loads of 1 MiB holds the loop's GIL for about 10 ms)."""
    committed: list[Event] = []

    async def scenario() -> tuple[Any, Operation]:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", on_commit=committed.extend)
        try:
            operation_id, token = await started_operation(store)
            text = json.dumps(LARGE)
            problem, data = limits.checked_result(text)
            assert problem is None and data == LARGE
            committed.clear()
            await store.checkpoints([StepReport(operation_id, 0, text, continued=True, step_token=token, result=data)])
            for n in range(2):
                await store.report_progress(operation_id, 1, n / 2, "", step_token=token)
            return data, await store.get_operation(operation_id)
        finally:
            await store.close()

    data, read = asyncio.run(scenario())
    assert [e.type for e in committed] == [EventType.STEP_COMPLETED, EventType.PROGRESS, EventType.PROGRESS]
    assert all(e.snapshot["result"] is data for e in committed) and read.result is data
