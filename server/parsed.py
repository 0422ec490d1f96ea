"""Large values parsed once: step results (with their compact JSON text) and inputs, the few most recent, by operation."""

from __future__ import annotations

import threading
from typing import Any

from pausable.server import jsontext, offload

RESULT_MEMBER = '"result": '  # how an event's snapshot text names its result (json.dumps, jsontext.dumps)


class ParsedValues:
    """The parsed last result of the few operations whose result was large most recently, by operation id.

    Every event of an operation keeps a snapshot of it, result included, and every read of it parses the row's
    result_json: json.loads of 1 MiB is one C call that holds the GIL (so the event loop) for about 10 ms, paid again
    for each event after a large result (progress, pause, the terminal event) and each GetOperation. The value the
    daemon parsed when the result came in (limits.checked_result) is kept here instead and used while the row's text
    is the same (a string comparison: 0.1 ms for 1 MiB); an event's snapshot holding that same text reuses it too
    (`snapshot`). Only results over offload_json_bytes are kept (small ones cost little to parse), and at most
    `capacity` of them: a parsed 1 MiB value of small objects takes about 11 MB. The values are shared and must not
    be changed by their readers.

    Inputs are kept the same way (`inputs`): GetOperation, its LRO twin and the command replies parse an operation's
    input text on every call.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._values: dict[str, tuple[str, Any, bool]] = {}  # operation id -> (text, its value, jsontext's `finite`)
        self._compact: dict[str, tuple[Any, str]] = {}  # operation id -> (a kept value, its compact JSON text)
        self._messages: dict[str, tuple[Any, bytes]] = {}  # operation id -> (a kept value, as a serialized Value)
        self._lock = threading.Lock()  # the writer thread, the loop and conversion threads all use it

    def keep(self, operation_id: str, text: str, data: Any, finite: bool = False) -> None:
        """Keep `data`, parsed from `text`; `finite`: it holds no NaN or infinity (see jsontext.decode)."""
        if not offload.large(len(text)):
            return
        with self._lock:
            values = self._values
            for made in (values, self._compact, self._messages):
                made.pop(operation_id, None)
            if len(values) >= self.capacity:
                oldest = next(iter(values))
                for made in (values, self._compact, self._messages):
                    made.pop(oldest, None)
            values[operation_id] = (text, data, finite)

    def parse(self, operation_id: str, text: str) -> Any:
        """`json.loads(text)`: the kept value when it was parsed from that same text."""
        kept = self._values.get(operation_id)
        if kept is not None and kept[0] == text:
            return kept[1]
        data, finite = jsontext.decode(text)
        self.keep(operation_id, text, data, finite)
        return data

    def snapshot(self, operation_id: str, text: str) -> Any:
        """`json.loads(text)` of an event's snapshot of the operation; when its result is the kept text (jsontext.dumps
        writes it as it is), that is not parsed again: the kept value is the snapshot's result.

        The first `"result": ` in a snapshot's text is its own member: every member before it is a string or a number,
        and a string's quotes are escaped."""
        kept = self._values.get(operation_id)
        if kept is not None:
            start = text.find(RESULT_MEMBER) + len(RESULT_MEMBER)
            end = start + len(kept[0])
            if start >= len(RESULT_MEMBER) and text.startswith(kept[0], start) and text[end : end + 1] in (",", "}"):
                snapshot = jsontext.loads(text[:start] + "null" + text[end:])
                if isinstance(snapshot, dict) and snapshot.get("result", 0) is None:
                    snapshot["result"] = kept[1]
                    return snapshot
        return jsontext.loads(text)

    def compact_json(self, operation_id: str, data: Any) -> str:
        """`data` as compact JSON text (what Operation.result_json carries), made once for a kept value: json.dumps
        of 1 MiB is one C call holding the GIL for about 15 ms, paid again for each event and read otherwise; orjson
        makes it (jsontext.compact) when the kept value is known to hold no NaN or infinity."""
        done = self._compact.get(operation_id)
        if done is not None and done[0] is data:
            return done[1]
        kept = self._values.get(operation_id)
        mine = kept is not None and kept[1] is data
        text = jsontext.compact(data, finite=mine and kept is not None and kept[2])
        if mine:
            with self._lock:
                self._compact[operation_id] = (data, text)
        return text

    def message(self, operation_id: str, data: Any) -> bytes | None:
        """The kept value `data` as a serialized google.protobuf.Value, when `remember_message` was given it."""
        done = self._messages.get(operation_id)
        return done[1] if done is not None and done[0] is data else None

    def remember_message(self, operation_id: str, data: Any, serialized: bytes) -> None:
        """`serialized` (a google.protobuf.Value built from `data`) for the next replies, when `data` is the operation's
        kept value: building a Value of 1 MiB is 120 ms of Python (json_format.ParseDict)."""
        kept = self._values.get(operation_id)
        if kept is not None and kept[1] is data:
            with self._lock:
                if (kept := self._values.get(operation_id)) is not None and kept[1] is data:
                    self._messages[operation_id] = (data, serialized)


results = ParsedValues()
inputs = ParsedValues()
