"""A plain HTTP client for the gateway's tests (the standard library's, so what it sees is what any client sees)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error(self) -> dict[str, Any]:
        """The error object of a failed call: {"code", "status", "message"}."""
        assert self.status >= 400, f"expected an error, got {self.status}: {self.body}"
        error: dict[str, Any] = self.body["error"]
        return error


@dataclass
class ServerSentEvent:
    id: str
    event: str
    data: Any


def _connection(base: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> Reply:
    """One request; `body` is sent as JSON (`raw` as it is)."""
    connection = _connection(base, 30)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"Content-Type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        text = response.read()
        content_type = response.getheader("Content-Type", "")
        parsed = json.loads(text) if content_type.startswith("application/json") else text
        return Reply(response.status, parsed, {key.lower(): value for key, value in response.getheaders()})
    finally:
        connection.close()


def events(base: str, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Iterator[ServerSentEvent]:
    """The Server-Sent Events of a stream, as they come (comments skipped), until it ends; the socket's `timeout`
    bounds each wait. An HTTP error before the stream opens raises AssertionError with its body."""
    connection = _connection(base, timeout)
    try:
        connection.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        response = connection.getresponse()
        if response.status != 200:
            raise AssertionError(f"{response.status}: {response.read().decode()}")
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response:
            text = line.decode().rstrip("\n")
            if not text:
                if "data" in fields:
                    yield ServerSentEvent(fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"]))
                fields = {}
            elif not text.startswith(":"):
                name, _, value = text.partition(": ")
                fields[name] = value
    finally:
        connection.close()
