"""Checks on request fields; each failure is an InvalidArgument whose message says what to send instead."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from pausable.server.domain import decode_cursor
from pausable.server.errors import InvalidArgument

OPERATION_ID = re.compile(r"^[0-9a-f]{32}$")
LABEL_KEY = re.compile(r"^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$")
MAX_INPUT_BYTES = 1 << 20
MAX_LABELS = 64
MAX_TEXT = 200


def operation_id(value: str) -> str:
    if not value:
        raise InvalidArgument("operation_id is required: pass the id returned by StartOperation")
    if not OPERATION_ID.match(value):
        raise InvalidArgument(
            f"operation_id {value[:80]!r} is malformed: ids are 32 lowercase hex digits, as StartOperation returns"
        )
    return value


def short_text(field: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidArgument(f"{field} is {len(value)} characters long; keep it to {MAX_TEXT}")
    return value


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


def workflow_input(workflow: str, data: Any, schema: dict[str, Any] | None) -> str:
    """The input as JSON text, after checking its size and the workflow's JSON Schema."""
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > MAX_INPUT_BYTES:
        raise InvalidArgument(
            f"input is {len(text)} bytes of JSON; the limit is {MAX_INPUT_BYTES}: pass a reference to large data instead"
        )
    if schema:
        import jsonschema  # only workflows with an input schema need it

        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
            raise InvalidArgument(
                f"input does not match the schema of workflow {workflow!r} at {where}: {error.message}; "
                "see ListWorkflows (`pausable workflows`) for the schema"
            )
    return text


def json_text(field: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidArgument(f"{field} must be JSON text: {error}") from None


def page_size(value: int, default: int = 50, maximum: int = 1000) -> int:
    if value < 0 or value > maximum:
        raise InvalidArgument(f"page_size {value} is out of range: use 1 to {maximum}, or 0 for {default}")
    return value or default


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
