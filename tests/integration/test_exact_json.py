"""The contract's exact JSON text (Operation.input_json / result_json): an integer beyond 2**53 survives a step
result and reaches the raw message, both SDKs and the CLI exactly, where google.protobuf.Value rounds it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from support.stack import Stack

from pausable.clients import AsyncClient, Client
from pausable.jsonvalue import from_value
from pausable.v1 import operation_pb2 as pb

BIG = 2**53 + 1
# demo.tapped adds 1 + 2 + 3 + 4 to its integer input; this input is exact as a double, the result is not.
INPUT = BIG - 10


def test_an_int_beyond_2_53_survives_a_step_result_end_to_end(stack: Stack, client: Client) -> None:
    op = client.start("demo.tapped", INPUT)
    assert op.wait(timeout=60) == BIG

    raw = client.stub.GetOperation(pb.GetOperationRequest(operation_id=op.id), timeout=10).operation
    assert raw.result_json == str(BIG) and raw.input_json == str(INPUT)
    assert from_value(raw.result) != BIG, "the Value beside it rounds (why result_json exists)"

    full = client.list(workflow="demo.tapped", view=pb.OPERATION_VIEW_FULL, page_size=1000).operations
    assert {o.id: o.result_json for o in full}[op.id] == str(BIG)
    basic = client.list(workflow="demo.tapped", page_size=1000).operations
    assert {o.id: (o.result_json, o.input_json) for o in basic}[op.id] == ("", ""), "BASIC leaves them out"

    async def from_async() -> object:
        async with AsyncClient(stack.target) as aio:
            return (await aio.get(op.id)).result

    assert asyncio.run(from_async()) == BIG

    shown = subprocess.run(
        [sys.executable, "-m", "pausable.cli", "get", op.id, "-o", "json", "--daemon", stack.target],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f'"result": {BIG}' in shown.stdout and json.loads(shown.stdout)["result"] == BIG
