"""Sending an operation's remaining plan to the Celery broker as one chain.

The daemon needs no task code: each step is a signature by task name, and
the headers tell the worker-side checkpoint which operation and step it is.
With a Redis broker the publisher thread has Celery and kombu build the
messages send_task would (celery_message.py) and sends a whole batch of
starts in one pipeline, one round trip instead of one per start; steps with
options that module does not handle, and other brokers, go through Celery's
send_task. One Celery app serves both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from pausable.headers import ATTEMPT_HEADER, MEMBER_HEADER, OPERATION_HEADER, STEP_HEADER, STEP_TOKEN_HEADER
from pausable.server import celery_message, jsontext, limits, stages
from pausable.server.batching import BatchingThread, Outcome
from pausable.server.domain import Dispatch

CONNECT_TIMEOUT_SECONDS = 5.0
TERMINATE_COMMAND = "pausable_terminate"  # the Celery remote control command of workers/terminate.py


def plan_for(task_names: list[str]) -> list[dict[str, Any]]:
    """A workflow's plan: one signature dict per step, each fed the previous result."""
    return [{"task": name, "args": [], "kwargs": {}, "options": {}} for name in task_names]


def messages(dispatch: Dispatch) -> list[dict[str, Any]]:
    """The remaining steps as signature dicts, each with the headers naming its operation, step and attempt,
    and the dispatch's step token (every step's, plain Celery tasks between pause points included).

    The chain ends before the next stage (stages.py): the step before it
    checkpoints synchronously and the daemon dispatches the stage's members.
    `dispatch.headers` (the trace context of the command that dispatched)
    were taken in the caller's context: this may run on the writer thread.
    """
    end = next((at for at in range(dispatch.start, len(dispatch.plan)) if stages.is_stage(dispatch.plan[at])), len(dispatch.plan))
    return [
        _signature(dispatch, dispatch.plan[step], step, [dispatch.argument] if step == dispatch.start else [])
        for step in range(dispatch.start, end)
    ]


def chains(dispatch: Dispatch) -> list[list[dict[str, Any]]]:
    """What a dispatch sends: the chain of its remaining steps, or, for a stage, one short chain per member sent."""
    if dispatch.members is None:
        return [messages(dispatch)]
    entry = dispatch.plan[dispatch.start]
    stage, name = entry[stages.STAGE], entry["task"]
    return [
        [
            _signature(
                dispatch,
                link,
                dispatch.start,
                [stages.member_input(stage, dispatch.argument, member, name)] if not at else [],
                member,
            )
            for at, link in enumerate(stages.member_chain(stage, member))
        ]
        for member in dispatch.members
    ]


SIGNATURE_BYTES = 300  # a step's signature and pausable headers as JSON, beyond its plan entry and the dispatch's strings


def body_surely_small(dispatch: Dispatch) -> bool:
    """Whether every message body of the dispatch is, as JSON, under offload_json_bytes (celery_message.encoded),
    judged from sizes already known instead of walking each body's chain (7.7 us a five-step message).

    Known only for a plan whose JSON text is at hand (jsontext.Listed: a workflow's, as StartOperation dispatches it)
    and a dispatch of its own chain (not a stage's members): a body is then at most that text, the argument, and
    per step the dispatch's header strings and SIGNATURE_BYTES. Otherwise False: the body is walked."""
    if not isinstance(dispatch.plan, jsontext.Listed) or dispatch.members is not None:
        return False
    per_step = SIGNATURE_BYTES + len(dispatch.operation_id) + len(dispatch.step_token)
    per_step += sum(len(key) + len(value) + 6 for key, value in dispatch.headers.items())
    budget = limits.current.offload_json_bytes - len(dispatch.plan.text) - per_step * (len(dispatch.plan) - dispatch.start)
    return budget > 0 and limits.json_bytes_left(dispatch.argument, budget) >= 0


def _signature(
    dispatch: Dispatch, entry: Mapping[str, Any], step: int, first: list[Any], member: int | None = None
) -> dict[str, Any]:
    """One step's signature dict with pausable's headers; `first`: the argument it is fed (the chain's first step)."""
    options = {key: value for key, value in (entry.get("options") or {}).items() if key != "task_id"}
    options["headers"] = {
        **(options.get("headers") or {}),
        OPERATION_HEADER: dispatch.operation_id,
        STEP_HEADER: step,
        ATTEMPT_HEADER: dispatch.attempt,
        **dispatch.headers,
        STEP_TOKEN_HEADER: dispatch.step_token,
    }
    if member is not None:
        options["headers"][MEMBER_HEADER] = member
    return {
        "task": entry["task"],
        "args": [*first, *(entry.get("args") or [])],
        "kwargs": entry.get("kwargs") or {},
        "options": options,
        "subtask_type": None,
        "immutable": False,
    }


def publishes_directly(broker_url: str) -> bool:
    """One Redis broker (not a failover list), which kombu's Redis transport and redis-py open alike."""
    return broker_url.startswith(("redis://", "rediss://")) and ";" not in broker_url


def celery_app(broker_url: str) -> Celery:
    """The daemon's Celery app: it builds the messages and sends what the pipeline cannot; no result backend."""
    app = Celery("pausable-daemon", broker=broker_url, set_as_current=False)
    app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True, broker_connection_timeout=5)
    return app


def split_chain(steps: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The first step and the rest as its `chain` (a stack: the next step last), the protocol-2 message a Celery chain makes.

    Building a celery.chain of N signatures costs O(N) canvas work
    (freeze, clone, deep copies) per dispatch; the message is the same.
    """
    first, *rest = steps
    return first, list(reversed(rest)) or None


class RedisPublisher:
    """The publisher thread's own Redis client: the messages of a batch go out in one pipeline.

    The client does not retry: a pipeline resent after a broken connection
    could push a chain twice. A connection the broker closed meanwhile is
    replaced when it is taken from the pool.
    """

    def __init__(self, url: str, app: Celery) -> None:
        self.url = url
        self.builder = celery_message.Messages(app)
        self._client: redis.Redis | None = None
        self._declared: set[str] = set()

    def publish(self, chains: Sequence[list[dict[str, Any]]], small: Sequence[bool]) -> list[BaseException | None]:
        """One error or None per chain (`small`: per chain, its bodies are surely small, see body_surely_small); raises
        when the pipeline as a whole fails (some messages may have gone out)."""
        client = self._connect()
        errors: list[BaseException | None] = [None] * len(chains)
        spans: dict[int, slice] = {}  # chain -> its commands in the pipeline
        with client.pipeline(transaction=False) as pipe:
            for index, steps in enumerate(chains):
                try:
                    message = self.builder.task(*split_chain(steps), small=small[index])
                except Exception as error:  # noqa: BLE001 - this chain only
                    errors[index] = error
                    continue
                first = len(pipe)
                for name, args in [*self._declare(message.queue), *message.commands]:
                    getattr(pipe, name)(*args)
                spans[index] = slice(first, len(pipe))
            try:
                replies = pipe.execute(raise_on_error=False)
            except Exception:
                self._declared.clear()
                raise
        for index, span in spans.items():
            errors[index] = next((reply for reply in replies[span] if isinstance(reply, Exception)), None)
        return errors

    def _connect(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    def _declare(self, queue: str) -> list[celery_message.Command]:
        """kombu's bindings of a queue, sent once per publisher (kombu declares once per connection)."""
        if queue in self._declared:
            return []
        self._declared.add(queue)
        return self.builder.bindings(queue)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class Dispatcher:
    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.app = celery_app(broker_url)
        self._redis = RedisPublisher(broker_url, self.app) if publishes_directly(broker_url) else None
        self._publisher: BatchingThread[Dispatch] = BatchingThread("pausable-publisher", self._publish)

    def _send(self, steps: list[dict[str, Any]]) -> None:
        first, chain = split_chain(steps)
        self.app.send_task(first["task"], args=first["args"], kwargs=first["kwargs"], chain=chain, **first["options"])

    async def publish(self, dispatch: Dispatch) -> None:
        """Send one dispatch as a chain; one thread builds and sends the chains of a moment together."""
        await self._publisher.submit(dispatch)

    def _publish(self, dispatches: Sequence[Dispatch]) -> list[Outcome]:
        """One thread, one broker connection: one pipeline for the batch, send_task for the steps it cannot carry."""
        owners: list[int] = []  # the dispatch each chain of the batch belongs to
        batch: list[list[dict[str, Any]]] = []
        small: list[bool] = []
        for index, dispatch in enumerate(dispatches):
            surely_small = body_surely_small(dispatch)
            for chain in chains(dispatch):
                owners.append(index)
                batch.append(chain)
                small.append(surely_small)
        sent: list[Outcome] = [(None, None)] * len(batch)
        direct = [
            index for index, steps in enumerate(batch) if self._redis is not None and celery_message.supports(steps[0]["options"])
        ]
        if self._redis is not None and direct:
            try:
                errors = self._redis.publish([batch[index] for index in direct], [small[index] for index in direct])
            except Exception as error:  # noqa: BLE001 - handed to every caller of the pipeline
                errors = [error] * len(direct)
            for index, failure in zip(direct, errors, strict=True):
                sent[index] = (None, failure)
        for index in sorted(set(range(len(batch))).difference(direct)):
            try:
                self._send(batch[index])
            except Exception as error:  # noqa: BLE001 - handed to the caller
                sent[index] = (None, error)
        outcomes: list[Outcome] = [(None, None)] * len(dispatches)
        for owner, outcome in zip(owners, sent, strict=True):
            if outcome[1] is not None and outcomes[owner][1] is None:
                outcomes[owner] = outcome  # one member's failure fails its dispatch: the outbox sends it all again
        return outcomes

    async def terminate(self, operation_id: str) -> None:
        """Tell every worker to kill the pool process running a step of this operation (a broadcast on the broker's
        Celery control channel; workers/terminate.py answers it). Nothing waits for replies."""
        await asyncio.to_thread(
            self.app.control.broadcast, TERMINATE_COMMAND, arguments={"operation_id": operation_id}, reply=False
        )

    def close(self) -> None:
        self._publisher.close()
        if self._redis is not None:
            self._redis.close()
        self.app.close()
