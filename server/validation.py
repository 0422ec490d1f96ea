"""Checks on request fields; each failure is an InvalidArgument whose message says what to send instead."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from pausable.jsonvalue import from_value
from pausable.server import jsontext, limits, offload
from pausable.server.domain import decode_cursor
from pausable.server.errors import InvalidArgument

OPERATION_ID = re.compile(r"^[0-9a-f]{32}$")
LABEL_KEY = re.compile(r"^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$")
MAX_LABELS = 64
MAX_TEXT = 200
MAX_REASON = 1000  # characters of a Pause, Resume or Cancel reason


def operation_id(value: str) -> str:
    if not value:
        raise InvalidArgument("operation_id is required: pass the id returned by StartOperation")
    if not OPERATION_ID.match(value):
        raise InvalidArgument(
            f"operation_id {value[:80]!r} is malformed: ids are 32 lowercase hex digits, as StartOperation returns"
        )
    return value


def short_text(field: str, value: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{field} is {len(value)} characters long; keep it to {limit}")
    return value


def reason(value: str) -> str:
    """A command's free-text reason: at most MAX_REASON characters."""
    return short_text("reason", value, MAX_REASON)


def labels(values: dict[str, str]) -> dict[str, str]:
    if len(values) > MAX_LABELS:
        raise InvalidArgument(f"{len(values)} labels given; at most {MAX_LABELS} are allowed")
    for key, value in values.items():
        if not LABEL_KEY.match(key):
            raise InvalidArgument(
                f"label key {key[:80]!r} is invalid: use 1-63 lowercase letters, digits, '.', '_', '/' or '-', "
                "starting and ending with a letter or digit"
            )
        short_text(f"label {key!r}", value)
    return dict(values)


def workflow_input(workflow: str, data: Any, schema: dict[str, Any] | None, finite: bool = False) -> str:
    """The input as JSON text, after checking its size, its depth and the workflow's JSON Schema; `finite`: it holds
    no NaN or infinity (see jsontext.compact)."""
    limits.check_depth("input", data)
    text = jsontext.compact(data, finite, ensure_ascii=True)
    limits.check_bytes("input", len(text.encode()), limits.current.max_input_bytes, "max_input_bytes")
    if schema:
        from pausable.server import schemas  # jsonschema and RE2: only workflows with an input schema need them

        errors = schemas.all_errors(schema, data, SCHEMA_ERRORS_READ)
        if errors:
            raise InvalidArgument(
                f"input does not match the schema of workflow {workflow!r}: {schema_problems(errors)}; "
                "see ListWorkflows (`pausable workflows`) for the schema"
            )
    return text


SCHEMA_ERRORS_READ, SCHEMA_ERRORS_SHOWN = 50, 10


def schema_problems(errors: list[Any]) -> str:
    """Each violation as "at rows: ...", the first SCHEMA_ERRORS_SHOWN of them, each cut at 300 characters."""
    shown = []
    for error in errors[:SCHEMA_ERRORS_SHOWN]:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        shown.append(f"at {where}: {error.message[:300]}")
    more = len(errors) - len(shown)
    if more > 0:
        shown.append(f"and {more}{'+' if len(errors) >= SCHEMA_ERRORS_READ else ''} more")
    return "; ".join(shown)


async def workflow_input_off_loop(
    workflow: str, value: struct_pb2.Value | None, schema: dict[str, Any] | None
) -> tuple[str, Any]:
    """`workflow_input` of the request's Value, and the value as JSON data: converted and checked in a thread when it
    is larger than offload_json_bytes, so a large input (or schema) never holds the event loop (720 kB with a schema:
    about 0.5 s)."""

    def checked() -> tuple[str, Any]:
        data = None if value is None else from_value(value)
        return workflow_input(workflow, data, schema, finite=True), data

    if value is not None and limits.value_bytes_over(value, limits.current.offload_json_bytes):
        return await offload.off_loop(checked)
    return checked()


def json_text(field: str, text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidArgument(
            f"{field} nests deeper than {limits.current.max_json_depth} levels (the limit, setting max_json_depth)"
        ) from None
    except ValueError as error:
        raise InvalidArgument(f"{field} must be JSON text: {error}") from None


def page_size(value: int, default: int = 50, maximum: int = 1000) -> int:
    if value < 0 or value > maximum:
        raise InvalidArgument(f"page_size {value} is out of range: use 1 to {maximum}, or 0 for {default}")
    return value or default


def timestamp(field: str, value: Timestamp) -> datetime:
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidArgument(
            f"{field} is out of range (seconds {value.seconds}, nanos {value.nanos}): send a time from year 1 to 9999"
        ) from None


def operation_view(value: int) -> bool:
    """Whether ListOperations returns input and result (OPERATION_VIEW_FULL)."""
    from pausable.v1 import operation_pb2 as pb

    if value not in pb.OperationView.values():
        raise InvalidArgument(f"view {value} is not an OperationView: send OPERATION_VIEW_BASIC (the default) or _FULL")
    return value == pb.OPERATION_VIEW_FULL


def encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode()


def decode_page_token(token: str) -> str | None:
    if not token:
        return None
    try:
        before = json.loads(base64.urlsafe_b64decode(token.encode()))["before"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        before = None
    if not isinstance(before, str) or not OPERATION_ID.match(before):
        raise InvalidArgument(
            "page_token is not one this server issued: pass next_page_token from the previous response unchanged"
        )
    return before


def event_cursor(value: str) -> str:
    try:
        decode_cursor(value)
    except ValueError:
        raise InvalidArgument(
            "after_cursor is not one this server issued: pass a cursor from WatchEvents unchanged, or empty"
        ) from None
    return value


def new_input(field: str, value: struct_pb2.Value | None, text: str) -> tuple[str, Any] | None:
    """A value given to Resume or Fork (`value`, or exact JSON `text`) as compact JSON text and data, within the step
    result limits (it becomes a stored result); None when neither is given."""
    if value is not None and text:
        raise InvalidArgument(f"set {field} or {field}_json, not both")
    if value is None and not text:
        return None
    if value is not None:
        data, finite = from_value(value), True
    else:
        data = limits.parse_json(f"{field}_json", text, limits.current.max_result_bytes, "max_result_bytes")
        finite = False
    limits.check_depth(field, data)
    compact = jsontext.compact(data, finite, ensure_ascii=True)
    limits.check_bytes(field, len(compact.encode()), limits.current.max_result_bytes, "max_result_bytes")
    return compact, data


def step_input(data: Any, step_number: int, step_name: str, schema: dict[str, Any] | None) -> None:
    """`data`, given to step `step_number` (`step_name`), against the input schema that step declares (if any)."""
    if not schema:
        return
    from pausable.server import schemas  # jsonschema and RE2: only steps with an input schema need them

    errors = schemas.all_errors(schema, data, SCHEMA_ERRORS_READ)
    if errors:
        raise InvalidArgument(
            f"input does not match the input schema of step {step_number} ({step_name}): {schema_problems(errors)}; "
            "see the step's input_schema in ListWorkflows' plan_json (`pausable workflows -o json`)"
        )


def duration(field: str, value: Duration) -> float:
    """A Duration as seconds, from timers.MIN_SECONDS to timers.MAX_SECONDS."""
    from pausable.server import timers

    seconds = value.seconds + value.nanos / 1e9
    if not timers.MIN_SECONDS <= seconds <= timers.MAX_SECONDS:
        raise InvalidArgument(
            f"{field} is {seconds:g}s; give from {timers.MIN_SECONDS:g} second to 366 days (e.g. {{seconds: 3600}} for an hour)"
        )
    return seconds
