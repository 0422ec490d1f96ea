"""Large values parsed once: step results (with their compact JSON text) and inputs, the few most recent, by operation."""

from __future__ import annotations

import json
import threading
from typing import Any

from pausable.server import offload


class ParsedValues:
    """The parsed last result of the few operations whose result was large most recently, by operation id.

    Every event of an operation keeps a snapshot of it, result included, and every read of it parses the row's
    result_json: json.loads of 1 MiB is one C call that holds the GIL (so the event loop) for about 10 ms, paid again
    for each event after a large result (progress, pause, the terminal event) and each GetOperation. The value the
    daemon parsed when the result came in (limits.checked_result) is kept here instead and used while the row's text
    is the same (a string comparison: 0.1 ms for 1 MiB). Only results over offload_json_bytes are kept (small ones
    cost little to parse), and at most `capacity` of them: a parsed 1 MiB value of small objects takes about 11 MB.
    The values are shared and must not be changed by their readers.

    Inputs are kept the same way (`inputs`): GetOperation, its LRO twin and the command replies parse an operation's
    input text on every call.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._values: dict[str, tuple[str, Any]] = {}
        self._compact: dict[str, tuple[Any, str]] = {}  # operation id -> (a kept value, its compact JSON text)
        self._lock = threading.Lock()  # the writer thread, the loop and conversion threads all use it

    def keep(self, operation_id: str, text: str, data: Any) -> None:
        if not offload.large(len(text)):
            return
        with self._lock:
            values = self._values
            values.pop(operation_id, None)
            self._compact.pop(operation_id, None)
            if len(values) >= self.capacity:
                self._compact.pop(oldest := next(iter(values)), None)
                values.pop(oldest)
            values[operation_id] = (text, data)

    def parse(self, operation_id: str, text: str) -> Any:
        """`json.loads(text)`: the kept value when it was parsed from that same text."""
        kept = self._values.get(operation_id)
        if kept is not None and kept[0] == text:
            return kept[1]
        data = json.loads(text)
        self.keep(operation_id, text, data)
        return data

    def compact_json(self, operation_id: str, data: Any) -> str:
        """`data` as compact JSON text (what Operation.result_json carries), made once for a kept value: json.dumps
        of 1 MiB is one C call holding the GIL for about 15 ms, paid again for each event and read otherwise."""
        done = self._compact.get(operation_id)
        if done is not None and done[0] is data:
            return done[1]
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        kept = self._values.get(operation_id)
        if kept is not None and kept[1] is data:
            with self._lock:
                self._compact[operation_id] = (data, text)
        return text


results = ParsedValues()
inputs = ParsedValues()
