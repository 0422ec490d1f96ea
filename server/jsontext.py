"""JSON text <-> data exactly as the stdlib's json module makes them, by C codecs that hold the GIL far less.

A single C call holds the GIL, so the event loop, for its whole run, whichever
thread makes it. Measured on 2 shared cores, a 0.86 MiB value (27,000 small
objects): json.loads 6.6-10 ms, msgspec 5.0 ms; json.dumps 10 ms, orjson 0.6 ms.

Each fast codec is used only where it gives json's own result, else json runs:

- msgspec decodes to the same values as json.loads (integers of any size stay
  exact; orjson would turn those beyond 64 bits into floats) and refuses what
  json reads differently or refuses too: NaN, Infinity, numbers beyond a double,
  lone surrogates, integers over 4300 digits, malformed text. json.loads then
  runs, so the value or the error is json's. Text msgspec decoded therefore
  holds no NaN or infinity (`Decoded.finite`).
- orjson writes what json.dumps(data, separators=(",", ":"), ensure_ascii=False)
  writes, except NaN and infinities (null: so only `finite` data goes to it),
  floats under 1e-4 (0.00001 for 1e-05, 1.5e-7 for 1.5e-07: its text then holds
  "0.0000" or "e-", checked) and what it refuses (integers beyond 64 bits, lone
  surrogates, nesting over 254 levels): json.dumps writes those.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

import msgspec
import orjson

_decoder = msgspec.json.Decoder()


class Decoded(NamedTuple):
    data: Any
    finite: bool  # decoded by msgspec: no NaN or infinity in it, so `compact` may use orjson


def decode(text: str) -> Decoded:
    """`json.loads(text)`, and whether the fast decoder made it."""
    try:
        return Decoded(_decoder.decode(text), True)
    except (msgspec.DecodeError, UnicodeEncodeError, RecursionError):  # ValidationError is a DecodeError
        return Decoded(json.loads(text), False)


def loads(text: str) -> Any:
    """`json.loads(text)`: the same value, or the same error."""
    return decode(text).data


def compact(data: Any, finite: bool, *, ensure_ascii: bool = False, sort_keys: bool = False) -> str:
    """`json.dumps(data, separators=(",", ":"), ensure_ascii=ensure_ascii, sort_keys=sort_keys)`; by orjson when
    `data` is `finite` (holds no NaN or infinity: from `decode` with finite True, or from a google.protobuf.Value)
    and orjson writes the same."""
    if finite:
        try:
            text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS if sort_keys else None).decode()
        except TypeError:  # JSONEncodeError is a TypeError
            pass
        else:
            if "e-" not in text and "0.0000" not in text and (text.isascii() or not ensure_ascii):
                return text
    return json.dumps(data, separators=(",", ":"), ensure_ascii=ensure_ascii, sort_keys=sort_keys)


class Spliced(dict[str, Any]):
    """A JSON object whose member `key` is also at hand as JSON text (`text`, parsing to that member): `dumps` writes
    that text instead of encoding the member again. An event's snapshot holds the operation's last result this way:
    json.dumps of a snapshot with a 1 MiB result held the SQLite writer thread, so the loop, for 10-15 ms per event."""

    def __init__(self, members: dict[str, Any], key: str, text: str) -> None:
        super().__init__(members)
        self.key = key
        self.text = text


class Listed(list[Any]):
    """A JSON array that has its json.dumps text at hand (`text`, made once): `dumps` writes that text instead of
    encoding the list again. Not to be changed after it is made. A workflow's plan and step names go into the row of
    every operation it starts, the same each time (domain.Workflow.stored_plan): encoding them again was 8 us of the
    ~20 us of JSON the SQLite writer encodes per start (a five-step plan; py-spy: JSON was 28% of that thread's time)."""

    def __init__(self, items: Iterable[Any]) -> None:
        super().__init__(items)
        self.text = json.dumps(self)


def dumps(value: Any) -> str:
    """`json.dumps(value)`, the store's serializer of JSON columns (the engines' json_serializer); a `Spliced` object's
    member is its text, so the result is json.dumps(value) but for the whitespace inside that member; a `Listed`
    array is its text."""
    if type(value) is Listed:
        return value.text
    if not isinstance(value, Spliced):
        return json.dumps(value)
    keys = list(value)
    at = keys.index(value.key)
    before = json.dumps({key: value[key] for key in keys[:at]})[1:-1]
    after = json.dumps({key: value[key] for key in keys[at + 1 :]})[1:-1]
    member = f"{json.dumps(value.key)}: {value.text}"
    return "{" + ", ".join(part for part in (before, member, after) if part) + "}"
