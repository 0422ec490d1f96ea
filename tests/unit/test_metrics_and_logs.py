"""The daemon's pause-latency histogram and the JSON log lines, without a daemon (tests/integration/test_observability.py has the rest)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading


def test_pause_latency_pairs_each_pause_request_with_its_paused_event() -> None:
    from pausable.server.domain import Event
    from pausable.server.metrics import DaemonMetrics
    from pausable.server.states import EventType

    def event(op: str, seq: int, type_: EventType, state: str, at: float) -> Event:
        return Event(op, seq, type_, "", at, {"id": op, "workflow": "w", "state": state, "last_seq": seq})

    metrics = DaemonMetrics()
    metrics.observe_events([event("a", 1, EventType.PAUSE_REQUESTED, "PAUSE_REQUESTED", 10.0)])
    metrics.observe_events([event("b", 1, EventType.PAUSE_REQUESTED, "PAUSE_REQUESTED", 11.0)])
    metrics.observe_events([event("b", 2, EventType.RESUMED, "RUNNING", 11.5)])  # withdrawn before it took effect
    metrics.observe_events([event("a", 2, EventType.PROGRESS, "PAUSE_REQUESTED", 11.7)])
    metrics.observe_events([event("a", 3, EventType.PAUSED, "PAUSED", 12.5), event("b", 3, EventType.PAUSED, "PAUSED", 13.0)])
    get = metrics.registry.get_sample_value
    assert get("pausable_pause_latency_seconds_count") == 1
    assert get("pausable_pause_latency_seconds_sum") == 2.5
    assert get("pausable_events_total", {"type": "PAUSED"}) == 2


def test_json_lines_take_the_operation_id_from_the_context_or_extra() -> None:
    import io
    import logging

    from pausable.logs import OPERATION_ID, make_handler

    stream = io.StringIO()
    logger = logging.getLogger("pausable.test.jsonlogs")
    logger.propagate = False
    logger.addHandler(make_handler("json", stream))
    logger.setLevel(logging.INFO)
    logger.info("outside any operation")
    token = OPERATION_ID.set("op-from-context")
    try:
        logger.info("step %d done", 3)
        logger.info("explicit", extra={"operation_id": "op-from-extra", "seq": 7})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        OPERATION_ID.reset(token)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("operation_id") for line in lines] == [None, "op-from-context", "op-from-extra", "op-from-context"]
    assert lines[1]["message"] == "step 3 done" and lines[1]["level"] == "INFO" and lines[1]["logger"] == "pausable.test.jsonlogs"
    assert lines[2]["seq"] == 7
    assert "ValueError: boom" in lines[3]["exception"]


class _Written(io.StringIO):
    """A stream that counts its writes and signals each."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.wrote = threading.Event()

    def write(self, text: str) -> int:
        self.writes += 1
        self.wrote.set()
        return super().write(text)

    def messages(self) -> list[str]:
        return [line.split(" ", 4)[-1] for line in self.getvalue().splitlines()]  # after "date time LEVEL logger"


def _batching_logger(stream: _Written, flush_seconds: float) -> tuple[logging.Logger, logging.Handler]:
    from pausable.logs import make_handler

    handler = make_handler("text", stream, flush_seconds=flush_seconds)
    logger = logging.getLogger(f"pausable.test.batching.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, handler


def test_batched_info_lines_wait_and_a_warning_writes_them_at_once_in_order() -> None:
    stream = _Written()
    logger, handler = _batching_logger(stream, flush_seconds=3600)
    try:
        logger.info("first")
        logger.info("second")
        assert stream.getvalue() == ""
        logger.warning("third")
        assert stream.messages() == ["first", "second", "third"]
        assert stream.writes == 1
        logger.info("fourth")
        handler.close()
        assert stream.messages()[-1] == "fourth"
    finally:
        logger.removeHandler(handler)


def test_batched_info_lines_go_out_after_flush_seconds_in_one_write() -> None:
    stream = _Written()
    logger, handler = _batching_logger(stream, flush_seconds=0.05)
    try:
        for index in range(5):
            logger.info("line %d", index)
        assert stream.wrote.wait(10), "the queued lines were never written"
        assert stream.writes == 1
        assert stream.messages() == [f"line {i}" for i in range(5)]
    finally:
        handler.close()
        logger.removeHandler(handler)


def test_text_lines_are_what_logging_formatter_writes_for_the_same_format() -> None:
    """TextFormatter formats the time once per second and the line as an f-string: the text is the stdlib's."""
    import hypothesis.strategies as st
    from hypothesis import given

    from pausable.logs import TextFormatter

    fast = TextFormatter()
    reference = logging.Formatter(TextFormatter.FORMAT)

    def record(created: float, operation_id: str | None, message: str, error: bool) -> logging.LogRecord:
        made = logging.makeLogRecord({"name": "pausable.x", "levelno": 20, "levelname": "INFO", "msg": "%s!", "args": (message,)})
        made.created, made.msecs = created, (created - int(created)) * 1000
        made.operation_id = operation_id
        if error:
            try:
                raise ValueError(message)
            except ValueError:
                made.exc_info = sys.exc_info()
        return made

    @given(
        st.lists(st.floats(min_value=0, max_value=4e9), min_size=1, max_size=5),
        st.none() | st.text(min_size=1, max_size=8),
        st.text(max_size=20),
        st.booleans(),
    )
    def same(times: list[float], operation_id: str | None, message: str, error: bool) -> None:
        for created in [*times, *sorted(times)]:  # in and out of order: the cached second changes both ways
            ours = fast.format(record(created, operation_id, message, error))
            theirs = record(created, operation_id, message, error)
            theirs.operation = f" [{operation_id}]" if operation_id else ""
            assert ours == reference.format(theirs)

    same()
