"""The Redis commands Celery's send_task sends for a task, built by Celery and kombu without touching the broker.

send_task costs the daemon a trip through Celery's router and kombu's
producer and one LPUSH round trip per message; the daemon publishes a whole
batch of starts in one pipeline instead (dispatch.RedisPublisher). The
message still comes from the libraries: Celery's AMQP.as_task_v2 makes the
protocol-2 headers, properties and body, kombu's serializer encodes the body,
and kombu's own Redis channel (EnvelopeChannel: unconnected) wraps it in the
transport's envelope and names the priority list, exactly as Channel._put
does. What is written here is only the glue that send_task_message and
Producer.publish run between those calls for the options `supports` accepts.

pyproject.toml pins the Celery and kombu range that
tests/integration/test_celery_message.py has compared with send_task field by field; a
release outside it may change private pieces used here (_put's
`_publish_batch`, Channel attributes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu.entity import maybe_delivery_mode
from kombu.serialization import dumps
from kombu.transport.redis import Channel as RedisChannel
from kombu.utils import json as kombu_json

from pausable.server import limits, offload, random_ids

if TYPE_CHECKING:
    from celery import Celery

Command = tuple[str, tuple[Any, ...]]  # a redis-py client method and its arguments
EMPTY_REPR = saferepr({})


def encoded(body: Any, serializer: str, small: bool = False) -> tuple[str, str, Any]:
    """kombu's `dumps(body, serializer=serializer)`. A JSON body larger than offload_json_bytes is written by the json
    module's Python encoder, which writes the same text as its C encoder in many small steps: the C encoder's one call
    held the GIL, so the event loop, for 14 ms for a 0.86 MiB argument (the Python one takes 49 ms of this thread,
    giving the GIL back every 1 ms, in the offload thread). `small`: the caller knows it is not (not measured again)."""
    if serializer == "json" and not small and limits.json_bytes_over(body, limits.current.offload_json_bytes):
        text = offload.in_the_offload_thread(lambda: "".join(kombu_json.JSONEncoder().iterencode(body)))
        return "application/json", "utf-8", text
    return dumps(body, serializer=serializer)


class EnvelopeChannel(RedisChannel):
    """kombu's Redis channel without a connection: only the methods that build and route a message.

    Channel.__init__ opens a client, pings the broker and joins the
    connection's poller, none of which building a message needs.
    prepare_message and basic_publish (-> _inplace_augment_message -> _put)
    read only class attributes (body encoding, priority steps, key separator)
    and `_expires` (queue expiries: the daemon declares none), so they run as
    kombu wrote them. Transport options are not read: the daemon's Celery app
    sets none.
    """

    def __init__(self) -> None:  # deliberately not RedisChannel.__init__: no connection
        self._expires: dict[str, int] = {}


CHANNEL = EnvelopeChannel()


@dataclass
class Commands:
    """What kombu's _put sends for one message, collected instead of sent.

    _put takes a `_publish_batch` (kombu's PublishBatch) and hands it its
    commands through `add`; this one only keeps them for the caller's pipeline.
    """

    commands: list[Command] = field(default_factory=list)

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, args))


@dataclass(frozen=True)
class TaskMessage:
    commands: list[Command]  # kombu's LPUSH of the envelope onto the queue's priority list
    queue: str


def supports(options: dict[str, Any]) -> bool:
    """Whether `Messages.task` makes what send_task would for a step with these options.

    Other options (routing, expiry, countdown, links...) take Celery's router
    and producer paths not reproduced here; those steps still go through send_task.
    """
    priority = options.get("priority", 0)
    return (
        options.keys() <= {"queue", "priority", "headers"}
        and ("queue" not in options or (isinstance(options["queue"], str) and bool(options["queue"])))
        and isinstance(priority, int)
        and not isinstance(priority, bool)
        and isinstance(options.get("headers") or {}, dict)
    )


class Messages:
    """Builds one Celery app's task messages and queue bindings.

    What as_task_v2 would work out afresh for every message and what never
    changes in the daemon is worked out once and passed in, with the values
    as_task_v2 would compute: the app's settings (a Celery setting lookup
    walks its layered configuration, several microseconds each, two per
    message for the argument reprs), the `origin` (this process's
    anon_nodename), each queue's delivery mode, and the repr of empty kwargs.
    Measured: 121-138 µs per chain before, the most of a start's publish;
    tests/integration/test_celery_message.py checks the result is still
    what send_task sends.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.default_queue: str = app.conf.task_default_queue
        self.serializer: str = app.conf.task_serializer
        self.default_delivery_mode: str | int = app.conf.task_default_delivery_mode
        self.repr_maxlevels: int = app.conf.task_repr_maxlevels
        self.origin = anon_nodename()
        self._delivery_modes: dict[str, int | None] = {}

    def task(self, step: dict[str, Any], chain: list[dict[str, Any]] | None, small: bool = False) -> TaskMessage:
        """`step` as a signature dict with supported options; `chain` the steps after it, the next one last (Celery's order);
        `small`: the body is known to be under offload_json_bytes (see `encoded`).

        Called in the thread that publishes: `reply_to` is that thread's oid, as send_task would set it.
        """
        options = step["options"]
        queue = options.get("queue", self.default_queue)
        amqp = self.app.amqp
        args, kwargs = step["args"], step["kwargs"]
        headers, properties, body, _ = amqp.as_task_v2(
            random_ids.uuid4(),
            step["task"],
            args=args,
            kwargs=kwargs,
            chain=chain,
            reply_to=self.app.thread_oid,
            ignore_result=None,  # type: ignore[arg-type]  # send_task passes the option's value: none here
            origin=self.origin,
            argsrepr=saferepr(args or (), amqp.argsrepr_maxsize, maxlevels=self.repr_maxlevels),
            kwargsrepr=saferepr(kwargs, amqp.kwargsrepr_maxsize, maxlevels=self.repr_maxlevels) if kwargs else EMPTY_REPR,
        )
        headers.update(options.get("headers") or {})
        properties["delivery_mode"] = self.delivery_mode(queue)
        content_type, content_encoding, data = encoded(body, self.serializer, small)
        message = CHANNEL.prepare_message(data, options.get("priority", 0), content_type, content_encoding, headers, properties)
        commands = Commands()
        # send_task_message routes a direct exchange's queue through the anonymous exchange.
        CHANNEL.basic_publish(message, exchange="", routing_key=queue, _publish_batch=commands)
        return TaskMessage(commands=commands.commands, queue=queue)

    def delivery_mode(self, queue: str) -> int | None:
        """The queue exchange's delivery mode, else the app's default (send_task_message), as kombu's Producer writes it."""
        if queue not in self._delivery_modes:
            exchange_mode = self.app.amqp.queues[queue].exchange.delivery_mode
            self._delivery_modes[queue] = maybe_delivery_mode(exchange_mode or self.default_delivery_mode)
        return self._delivery_modes[queue]

    def bindings(self, queue: str) -> list[Command]:
        """The SADDs kombu's Redis channel makes when a queue is first declared (Channel._queue_bind), as pipeline commands.

        Written out because kombu binds through its own client, one round
        trip per queue outside any batch; here they go in the message's
        pipeline. The pattern is empty: Celery's queues are bound to direct
        exchanges.
        """
        entity = self.app.amqp.queues[queue]
        exchange = entity.exchange.name
        member = CHANNEL.sep.join([entity.routing_key or "", "", entity.name])
        return [
            ("sadd", (CHANNEL.keyprefix_queue % (exchange,), member)),
            ("sadd", (CHANNEL.keyprefix_binding_permanent % (exchange,), member)),  # type: ignore[attr-defined]  # not in kombu-stubs
        ]
