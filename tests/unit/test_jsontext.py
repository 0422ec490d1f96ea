"""server/jsontext.py gives exactly what the json module gives: the same values, errors and text, fast or not."""

from __future__ import annotations

import json
import math
import random
import struct
import sys
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf import struct_pb2
from kombu.serialization import dumps

from pausable.jsonvalue import set_value, to_value
from pausable.server import celery_message, convert, jsontext, limits, offload, parsed
from pausable.server.domain import Operation
from pausable.server.states import State
from pausable.v1 import operation_pb2 as pb

TEXTS = [
    "null", "true", "[]", "{}", " [1, 2 ] ", '{"a":1,"b":2,"a":3}', "-0", "-0.0", "1E5", "0.1", "1e16", "1e-5", "4.9e-325",
    "9007199254740993", str(2**63), str(2**64 - 1), str(2**64), str(-(2**63) - 1), "1" * 30, "-" + "9" * 4300,
    "1" * 30 + ".5", "1.7976931348623157e308", '"\\u0000\\u001f\\u007f\\b\\f\\n\\r\\t\\/"', '"é€😀"', '"\\ud83d\\ude00"',
    # what the fast decoder refuses: json decides
    "NaN", "Infinity", "-Infinity", "1e400", "[1e999]", '"\\ud800"', '"\\udc00\\ud800"', "[" * 3000 + "]" * 3000,
]  # fmt: skip
INVALID = ["", "01", "1.", ".5", "+1", "[1,]", "tru", '"a\nb"', '{"a": 1}x', "\ufeff1", "\xa01", '"\\x"', "9" * 4301]


def outcome(parse: Any, text: str) -> tuple[str, str]:
    try:
        return "ok", repr(parse(text))
    except RecursionError:
        return "RecursionError", ""
    except ValueError as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize("text", TEXTS + INVALID)
def test_loads_gives_the_value_or_the_error_json_gives(text: str) -> None:
    assert outcome(jsontext.loads, text) == outcome(json.loads, text)


def test_only_text_without_nan_or_infinity_is_decoded_finite() -> None:
    assert jsontext.decode('{"a": [1.5, 2]}') == ({"a": [1.5, 2]}, True)
    for text in ("NaN", "[Infinity]", "[1e400]"):
        assert not jsontext.decode(text).finite


def floats(count: int) -> list[float]:
    rng = random.Random(7)
    found: list[float] = [1e-4, 9.99e-5, 1e-5, 1.5e-7, 5e-324, 1e16, 1e22, -0.0, 0.0, 123456789.123]
    while len(found) < count:
        if rng.random() < 0.5:
            value = struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        else:
            value = rng.random() * 10 ** rng.randint(-25, 25)
        if math.isfinite(value):
            found.append(value)
    return found


VALUES: list[Any] = [
    {"rows": [{"n": n, "name": f"row-{n:06d}", "x": n / 7} for n in range(200)]},
    ["e-", "0.0000", 'é€😀\u2028\x00\x7f"\\/', True, False, None, 2**63 - 1, -(2**63), 2**64 - 1],
    [2**64, -(2**64)],  # beyond 64 bits: orjson refuses, json writes them
    ["\ud800"],  # a lone surrogate: orjson refuses
    {"b": 1, "a": {"d": [], "c": {}}, "é": 2, "😀": 3, "z": 4},
    floats(20_000),
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("ensure_ascii", [False, True])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_compact_writes_the_text_json_writes(value: Any, ensure_ascii: bool, sort_keys: bool) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ensure_ascii, sort_keys=sort_keys)
    for finite in (True, False):
        assert jsontext.compact(value, finite, ensure_ascii=ensure_ascii, sort_keys=sort_keys) == expected


def test_compact_of_data_not_known_finite_keeps_nan_and_infinity() -> None:
    value = [math.nan, math.inf, -math.inf]
    assert jsontext.compact(value, finite=False) == json.dumps(value, separators=(",", ":"))


def test_dumps_is_json_dumps_with_a_spliced_member_written_as_its_text() -> None:
    members = {"id": "x", "progress_message": 'say "result": no', "result": None, "error": {"result": 1}, "labels": {}}
    result = {"rows": [1, 2.5, "é"]}
    assert jsontext.dumps(members) == json.dumps(members)
    spliced = jsontext.Spliced({**members, "result": result}, "result", json.dumps(result))
    assert jsontext.dumps(spliced) == json.dumps({**members, "result": result})
    compact = jsontext.Spliced({**members, "result": result}, "result", json.dumps(result, separators=(",", ":")))
    assert json.loads(jsontext.dumps(compact)) == {**members, "result": result}
    for key in ("id", "labels"):  # the member first or last
        alone = jsontext.Spliced({key: result}, key, "[1]")
        assert jsontext.dumps(alone) == json.dumps({key: [1]})


def test_a_snapshot_holding_the_kept_result_text_reuses_the_kept_value() -> None:
    values = parsed.ParsedValues()
    result = {"rows": list(range(5000))}
    text = json.dumps(result)
    data, finite = jsontext.decode(text)
    values.keep("op", text, data, finite)
    snapshot = {"id": "op", "progress_message": '"result": [', "result": result, "error": None, "labels": {"a": "b"}}
    written = jsontext.dumps(jsontext.Spliced(snapshot, "result", text))
    read = values.snapshot("op", written)
    assert read == snapshot and read["result"] is data
    other = jsontext.dumps({**snapshot, "result": {"rows": [1]}})  # another result: parsed as usual
    assert values.snapshot("op", other) == {**snapshot, "result": {"rows": [1]}}
    spaced = written.replace(text + ",", text + " ,")  # the kept text, but not all of the member: parsed as usual
    assert values.snapshot("op", spaced) == snapshot and values.snapshot("op", spaced)["result"] is not data
    assert values.compact_json("op", data) == json.dumps(result, separators=(",", ":"), ensure_ascii=False)


def test_a_kept_value_becomes_a_value_message_once_then_is_reused_as_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    result = {"rows": [{"n": n, "big": 2**60 + n} for n in range(2000)]}
    text = json.dumps(result)
    data, finite = jsontext.decode(text)
    monkeypatch.setattr(parsed, "results", parsed.ParsedValues())
    parsed.results.keep("0" * 32, text, data, finite)
    built: list[Any] = []

    def counted(target: Any, value: Any) -> None:
        built.append(value)
        set_value(target, value)

    monkeypatch.setattr(convert, "set_value", counted)
    operation = Operation("0" * 32, "wf", State.SUCCEEDED, 1, 1, "s", 1.0, "", data, None, "me", {}, 1.0, 2.0, 3.0, 4)
    first = convert.operation_parts(operation)
    made = len(built)
    second = convert.operation_parts(operation)
    assert first.values["result"] is second.values["result"] and made == 2000 and len(built) == made  # row by row, once
    whole = pb.Operation.FromString(second.serialized())
    assert whole.result == to_value(result) and whole.result_json == json.dumps(result, separators=(",", ":"))
    assert convert.operation_to_pb(operation) == whole and len(built) == made, "built in place: merged from the bytes"
    other = Operation("0" * 32, "wf", State.SUCCEEDED, 1, 1, "s", 1.0, "", json.loads(text), None, "me", {}, 1.0, 2.0, 3.0, 4)
    assert convert.operation_to_pb(other) == whole and built[made:] == [other.result], "a value not kept: built in place"


@pytest.mark.parametrize(
    "data",
    [
        {"a": [{"k": "x" * 100, "n": n, "deep": [[n, None, True, 1.5]]} for n in range(2000)], "b": {"c": ""}, "": 1},
        [[{"n": n} for n in range(3000)], "s" * 50_000, {"é": "ü" * 40_000}, [], {}],
    ],
)
def test_a_large_value_serialized_in_pieces_parses_to_the_same_value(data: Any) -> None:
    assert limits.json_bytes_over(data, convert.PIECE_BYTES)
    assert struct_pb2.Value.FromString(convert.value_bytes(data)) == to_value(data)


@pytest.mark.parametrize("rows", [3, 5000])
def test_a_celery_body_is_encoded_as_kombu_encodes_it(rows: int) -> None:
    argument = {"rows": [{"n": n, "x": n / 7, "é": [None, True, "a\nb", 2**70]} for n in range(rows)]}
    body = ([argument], {"when": datetime(2026, 1, 2, tzinfo=UTC), "id": uuid.UUID(int=7)}, {"chain": None})
    assert celery_message.encoded(body, "json") == dumps(body, serializer="json")
    assert limits.json_bytes_over(body, limits.current.offload_json_bytes) == (rows > 3), "it is judged large"


def test_the_favoured_switch_interval_lasts_while_any_thread_favours_the_loop() -> None:
    before = sys.getswitchinterval()
    inside: list[float] = []
    started, release = threading.Event(), threading.Event()

    def other() -> None:
        offload.favouring_the_loop(lambda: (started.set(), release.wait(5)))

    thread = threading.Thread(target=other)
    thread.start()
    assert started.wait(5)
    offload.favouring_the_loop(lambda: inside.append(sys.getswitchinterval()))
    inside.append(sys.getswitchinterval())  # this one is done, the other thread's work goes on
    release.set()
    thread.join(5)
    assert inside == [offload.FAVOURED_SWITCH_SECONDS] * 2 and sys.getswitchinterval() == before


def test_a_listed_array_is_written_as_its_text_made_once() -> None:
    plan = [{"task": "a", "args": [1.5, "é"], "kwargs": {}, "options": {"queue": "q"}}, {"task": "b"}]
    listed = jsontext.Listed(plan)
    assert listed == plan and jsontext.dumps(listed) == json.dumps(plan)
    listed.text = "[0]"  # the text made once is what is written: no second encoding
    assert jsontext.dumps(listed) == "[0]"
    assert jsontext.dumps([listed]) == json.dumps([plan])  # inside another value it is a list like any other
