"""The daemon's pipelined Celery messages against what Celery's send_task puts in Redis (no daemon, no worker).

Celery and kombu build the messages (server/celery_message.py), but the
glue between their calls and the private pieces it uses are the daemon's:
these drift tests are what the Celery and kombu range pinned in
pyproject.toml has passed. Before widening it, run them against the new
releases and update server/celery_message.py until they pass again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from pausable.cli.launch import RedisServer
from pausable.server import celery_message
from pausable.server.dispatch import Dispatcher, RedisPublisher, celery_app, split_chain
from pausable.server.dispatch import messages as chain_messages
from pausable.server.domain import Dispatch

RANDOM = {"headers": ("id", "root_id"), "properties": ("correlation_id", "reply_to", "delivery_tag")}
LONG_ARGUMENT = {
    "rows": list(range(400)),
    "deep": [[[[{"it's": "a\nb"}]]]],
    "text": "x " * 700,
    "none": None,
    "yes": True,
    "pi": 3.14,
}


def step(task: str, args: list[Any] | None = None, **options: Any) -> dict[str, Any]:
    return {"task": task, "args": args or [], "kwargs": {}, "options": options}


def chain(operation_id: str, plan: list[dict[str, Any]], start: int, argument: Any) -> list[dict[str, Any]]:
    return chain_messages(Dispatch(operation_id, plan, start, argument))


CHAINS = {
    "default queue": chain("op1", [step("demo.one")], 0, {"quote": 'it\'s "q"\n', "unicode": "é☃"}),
    "queue": chain("op2", [step("demo.one", queue="q1")], 0, [1, 2]),
    "priority": chain("op3", [step("demo.one", priority=5)], 0, None),
    "priority above the top step": chain("op4", [step("demo.one", queue="q2", priority=200)], 0, 1),
    "custom headers": chain("op5", [step("demo.one", [7], headers={"tenant": "t1", "lang": "py2"})], 0, "x"),
    "a 3-step chain": chain(
        "op6", [step("demo.one", queue="q3"), step("demo.two", priority=3), step("demo.three", headers={"h": 1})], 0, {"a": 1}
    ),
    "long and deep argument": chain("op7", [step("demo.one")], 0, LONG_ARGUMENT),
    "resumed at step 1": chain("op8", [step("demo.one"), step("demo.two"), step("demo.three")], 1, {"b": 2}),
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def client(broker: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(broker.url) as connection:
        connection.flushdb()
        yield connection


def contents(client: redis.Redis) -> dict[str, Any]:
    """Every key of the database, then emptied: lists as their normalized messages, sets as their members.

    kombu declares a queue (its binding sets) once per pooled connection, and
    its pools are shared by every Celery app of the process: compare the sets
    only for a queue name no test used before.
    """
    found: dict[str, Any] = {}
    for key in sorted(client.keys("*")):
        if client.type(key) == b"list":
            found[key.decode()] = [normalized(entry) for entry in client.lrange(key, 0, -1)]
        else:
            found[key.decode()] = sorted(client.smembers(key))
    client.flushdb()
    return found


def messages(client: redis.Redis) -> dict[str, Any]:
    return {key: value for key, value in contents(client).items() if not key.startswith("_kombu.")}


def normalized(entry: bytes) -> str:
    """The entry as JSON text (key order kept), the body decoded, the per-message random fields blanked."""
    message = json.loads(entry)
    headers, properties = message["headers"], message["properties"]
    assert headers["id"] == headers["root_id"] == properties["correlation_id"]
    for section, fields in RANDOM.items():
        for field in fields:
            assert message[section][field]
            message[section][field] = "<random>"
    message["body"] = base64.b64decode(message["body"]).decode()
    return json.dumps(message)


def send_with_celery(url: str, steps: list[dict[str, Any]]) -> None:
    app = Celery("pausable-daemon", broker=url, set_as_current=False)
    app.conf.update(task_ignore_result=True)
    try:
        first, chain = split_chain(steps)
        app.send_task(first["task"], args=first["args"], kwargs=first["kwargs"], chain=chain, **first["options"])
    finally:
        app.close()


def send_directly(url: str, steps: list[dict[str, Any]]) -> None:
    app = celery_app(url)
    publisher = RedisPublisher(url, app)
    try:
        assert publisher.publish([steps], [False]) == [None]
    finally:
        publisher.close()
        app.close()


@pytest.mark.parametrize("case", CHAINS)
def test_same_message_as_send_task(broker: RedisServer, client: redis.Redis, case: str) -> None:
    steps = CHAINS[case]
    assert celery_message.supports(steps[0]["options"])
    send_with_celery(broker.url, steps)
    expected = messages(client)
    send_directly(broker.url, steps)
    assert messages(client) == expected


def test_declares_a_new_queue_as_kombu_does(broker: RedisServer, client: redis.Redis) -> None:
    steps = chain("op1", [step("demo.one", queue=f"new-{uuid.uuid4().hex}")], 0, 1)
    send_with_celery(broker.url, steps)
    expected = contents(client)
    send_directly(broker.url, steps)
    assert contents(client) == expected
    assert len(expected) == 3, expected


def test_a_batch_mixes_direct_and_celery_sends(broker: RedisServer, client: redis.Redis) -> None:
    plans = {"op1": [step("demo.one", queue="direct")], "op2": [step("demo.one", queue="via-celery", expires=60)]}

    async def dispatch_all() -> None:
        dispatcher = Dispatcher(broker.url)
        try:
            await asyncio.gather(*(dispatcher.publish(Dispatch(op, plan, 0, op)) for op, plan in plans.items()))
        finally:
            dispatcher.close()

    asyncio.run(dispatch_all())
    sent = {queue: json.loads(client.lindex(queue, 0))["headers"] for queue in ("direct", "via-celery")}
    assert sent["direct"]["pausable_operation_id"] == "op1" and sent["direct"]["expires"] is None
    assert sent["via-celery"]["pausable_operation_id"] == "op2" and sent["via-celery"]["expires"]


def test_a_broker_failure_reaches_the_caller(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    dispatcher = Dispatcher(server.url)
    server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            asyncio.run(dispatcher.publish(Dispatch("op1", [step("demo.one")], 0, None)))
    finally:
        dispatcher.close()


def test_direct_dispatch_opens_no_kombu_connection(
    broker: RedisServer, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Celery is in the daemon to build messages; the pipeline sends them: no send_task, no kombu connection or producer pool.

    (It replaces a subprocess test that kept celery and kombu out of the
    daemon's memory: they are imported now, for as_task_v2 and kombu's envelope.)
    """

    def no_send_task(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("send_task called for a step the pipeline carries")

    monkeypatch.setattr(Celery, "send_task", no_send_task)

    async def dispatch() -> None:
        dispatcher = Dispatcher(broker.url)
        try:
            await dispatcher.publish(Dispatch("op1", [step("demo.one", queue="q")], 0, 1))
            # Celery opens its producer pool (and a kombu connection) on its first send.
            assert dispatcher.app._pool is None
        finally:
            dispatcher.close()

    asyncio.run(dispatch())
    assert json.loads(client.lindex("q", 0))["headers"]["pausable_operation_id"] == "op1"
