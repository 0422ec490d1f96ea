"""The daemon's pause-latency histogram and the JSON log lines, without a daemon (tests/integration/test_observability.py has the rest)."""

from __future__ import annotations

import json


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
