"""The Redis list entry that Celery's send_task makes for a task, built without Celery or kombu.

send_task costs the daemon a trip through Celery's router, kombu's producer
and one LPUSH round trip per message; the daemon only ever sends one narrow
kind of message (a protocol-2 task by name, the rest of its plan as `chain`,
json serializer, kombu's Redis transport, Celery's default configuration), so
it builds the same bytes itself and can publish a batch in one pipeline.
`supports` says which steps are that kind; the others still go through Celery.
tests/test_celery_message.py compares these messages with send_task's, so an
upgrade of Celery or kombu that changes the format fails there.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import uuid
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

DEFAULT_QUEUE = "celery"  # task_default_queue
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu.transport.redis.PRIORITY_STEPS
MIN_PRIORITY, MAX_PRIORITY = 0, 9
SEP = "\x06\x16"  # kombu's Redis key separator
DELIVERY_MODE_PERSISTENT = 2
REPR_MAXSIZE = 1024  # argsrepr_maxsize, kwargsrepr_maxsize
REPR_MAXLEVELS = 3  # task_repr_maxlevels


@dataclass(frozen=True)
class Sender:
    """What a message takes from the sending process: `origin` (gen<pid>@<host>) and `reply_to` (Celery's thread oid)."""

    origin: str
    reply_to: str

    @classmethod
    def current(cls) -> Sender:
        node = f"{uuid.uuid4().int:x}-{os.getpid():x}-{threading.get_ident():x}-{id(cls):x}"
        return cls(origin=f"gen{os.getpid()}@{socket.gethostname()}", reply_to=str(uuid.uuid3(uuid.NAMESPACE_OID, node)))


@dataclass(frozen=True)
class TaskMessage:
    key: str  # the Redis list it is pushed to
    payload: str
    queue: str


def supports(options: dict[str, Any]) -> bool:
    """Whether `task_message` makes what send_task would for a step with these options."""
    queue = options.get("queue", DEFAULT_QUEUE)
    priority = options.get("priority", 0)
    return (
        options.keys() <= {"queue", "priority", "headers"}
        and isinstance(queue, str)
        and bool(queue)
        and isinstance(priority, int)
        and not isinstance(priority, bool)
        and isinstance(options.get("headers") or {}, dict)
    )


def task_message(sender: Sender, step: dict[str, Any], chain: list[dict[str, Any]] | None) -> TaskMessage:
    """`step` as a signature dict with supported options; `chain` the steps after it, the next one last (Celery's order)."""
    options = step["options"]
    queue = options.get("queue", DEFAULT_QUEUE)
    priority = options.get("priority", 0)
    task_id = str(uuid.uuid4())
    args, kwargs = step["args"] or (), step["kwargs"] or {}
    body = json.dumps([args, kwargs, {"callbacks": None, "errbacks": None, "chain": chain or None, "chord": None}])
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {**task_headers(sender, step["task"], task_id, args, kwargs), **(options.get("headers") or {})},
        "properties": {
            "correlation_id": task_id,
            "reply_to": sender.reply_to,
            "delivery_mode": DELIVERY_MODE_PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return TaskMessage(key=priority_key(queue, priority), payload=json.dumps(envelope), queue=queue)


def task_headers(sender: Sender, name: str, task_id: str, args: Any, kwargs: Any) -> dict[str, Any]:
    """Celery's protocol-2 headers (celery.app.amqp.AMQP.as_task_v2) for a task sent outside any task."""
    return {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": saferepr(args),
        "kwargsrepr": saferepr(kwargs),
        "origin": sender.origin,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }


def priority_key(queue: str, priority: int) -> str:
    """kombu's Redis transport keeps one list per priority step; step 0 is the queue's own name."""
    step = PRIORITY_STEPS[bisect(PRIORITY_STEPS, max(min(priority, MAX_PRIORITY), MIN_PRIORITY)) - 1]
    return f"{queue}{SEP}{step}" if step else queue


def bindings(queue: str) -> list[tuple[str, str]]:
    """The (set, member) pairs kombu adds when it first declares a queue: its direct exchange of the same name."""
    member = SEP.join([queue, "", queue])
    return [(f"_kombu.binding.{queue}", member), (f"_kombu.binding_permanent.{queue}", member)]


class Open(NamedTuple):
    text: str
    closer: str


class Fixed(NamedTuple):
    text: str  # a separator or an elided container: never truncated


class Key(NamedTuple):
    value: Any


class Quoted(NamedTuple):
    text: str


class Close:
    """Closes the innermost open container."""


CLOSE = Close()
Token = Open | Close | Fixed | Key | Quoted | str
SEPARATOR, KEY_SEPARATOR = Fixed(", "), Fixed(": ")


def saferepr(value: Any, maxlen: int = REPR_MAXSIZE, maxlevels: int = REPR_MAXLEVELS) -> str:
    """celery.utils.saferepr.saferepr for JSON-like values (Celery's argsrepr and kwargsrepr).

    Past `maxlen` characters it writes ", ..." and closes the containers it opened.
    """
    parts: list[str] = []
    closers: list[str] = []
    for token in _tokens(value, 0, maxlevels):
        if isinstance(token, Close):
            parts.append(closers.pop())
            maxlen -= len(parts[-1])
            continue
        if maxlen <= 0:
            parts.append(", ...")
            parts.extend(reversed(closers))
            break
        text = _render(token, maxlen, maxlevels)
        if isinstance(token, Open):
            closers.append(token.closer)
        parts.append(text)
        maxlen -= len(text)
    return "".join(parts)


def _tokens(value: Any, level: int, maxlevels: int) -> Iterator[Token]:
    if isinstance(value, str):
        yield Quoted(value)
        return
    if not isinstance(value, list | tuple | dict):
        yield str(value)
        return
    opening, closer = "[]" if isinstance(value, list) else "{}" if isinstance(value, dict) else "()"
    if isinstance(value, tuple) and len(value) == 1:
        closer = ",)"
    if maxlevels and level >= maxlevels:
        yield Fixed(f"{opening}...{closer}")
        return
    yield Open(opening, closer)
    for index, item in enumerate(value.items() if isinstance(value, dict) else value):
        if index:
            yield SEPARATOR
        if isinstance(value, dict):
            key, item = item
            yield Key(key)
            yield KEY_SEPARATOR
        yield from _tokens(item, level + 1, maxlevels)
    yield CLOSE


def _render(token: Open | Fixed | Key | Quoted | str, maxlen: int, maxlevels: int) -> str:
    if isinstance(token, Open | Fixed):
        return token.text
    if isinstance(token, Key):
        return saferepr(token.value, maxlen, maxlevels)
    if isinstance(token, Quoted):
        return "'{}'".format(_truncate(token.text, maxlen).replace("'", "\\'"))
    return _truncate(token, maxlen)


def _truncate(text: str, maxlen: int) -> str:
    if len(text) >= maxlen:
        return text[:maxlen].rsplit(" ", 1)[0] + "..."
    return text
