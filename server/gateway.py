"""The HTTP/JSON gateway and the web console, served by the daemon on its own event loop.

Each route calls the very handler the gRPC server runs for its method, as registered (handlers.py: the decode
guard, the access log and metrics, authentication and the per-identity limits), with an `HttpCall` standing in for
the gRPC call's context. Validation, status codes, messages and who may do what are therefore the same over both,
and the store, the hub and the engine are shared. The routes follow google.api.http's conventions
(`POST /v1/operations/{id}:pause`, the rest of the request in the query or the body); Watch and WatchEvents are
Server-Sent Events streams, resumable with Last-Event-ID.

aiohttp rather than Starlette on uvicorn: its server runs as a site on an event loop that is already running (the
daemon's), with no ASGI layer between a route and the socket, and its StreamResponse writes each SSE frame straight
to the transport; one well-kept dependency.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.message import Message

from pausable.config import Settings
from pausable.server import offload
from pausable.server.encoded import Encoded
from pausable.server.httpjson import HTTP_STATUS, BadRequest, error_body, message_of, request_from, to_json
from pausable.v1 import operation_pb2 as pb

log = logging.getLogger("pausable.server")

SERVICE = "/pausable.v1.OperationService/"
# Request headers passed to the handlers as the call's metadata (lowercase, as gRPC has them).
FORWARDED_HEADERS = ("authorization", "traceparent", "tracestate")
# A stream with nothing to send yet is opened (its headers sent) with a comment this soon, then kept alive with one
# this often: a browser's fetch resolves only once the headers arrive, and idle connections are cut by proxies.
FIRST_COMMENT_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
JSON = "application/json"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Route:
    http_method: str
    path: str
    rpc: str
    request_type: type[Message]
    body: bool = False


ID = "{operation_id:[^/:]+}"
UNARY_ROUTES = (
    Route("GET", "/v1/operations", "ListOperations", pb.ListOperationsRequest),
    Route("POST", "/v1/operations", "StartOperation", pb.StartOperationRequest, body=True),
    Route("GET", f"/v1/operations/{ID}", "GetOperation", pb.GetOperationRequest),
    Route("POST", f"/v1/operations/{ID}:pause", "Pause", pb.PauseRequest, body=True),
    Route("POST", f"/v1/operations/{ID}:resume", "Resume", pb.ResumeRequest, body=True),
    Route("POST", f"/v1/operations/{ID}:cancel", "Cancel", pb.CancelRequest, body=True),
    Route("POST", f"/v1/operations/{ID}:retry", "Retry", pb.RetryRequest, body=True),
    Route("POST", f"/v1/operations/{ID}:fork", "Fork", pb.ForkRequest, body=True),
    Route("GET", "/v1/workflows", "ListWorkflows", pb.ListWorkflowsRequest),
    Route("POST", "/v1/operations:bulkPause", "BulkPause", pb.BulkPauseRequest, body=True),
    Route("POST", "/v1/operations:bulkResume", "BulkResume", pb.BulkResumeRequest, body=True),
    Route("POST", "/v1/operations:bulkCancel", "BulkCancel", pb.BulkCancelRequest, body=True),
    Route("GET", "/v1/bulkActions/{bulk_action_id:[^/:]+}", "GetBulkAction", pb.GetBulkActionRequest),
)
WATCH = Route("GET", f"/v1/operations/{ID}/events", "Watch", pb.WatchRequest)
WATCH_EVENTS = Route("GET", "/v1/events", "WatchEvents", pb.WatchEventsRequest)


def console_files() -> Path | None:
    """The console's folder (server/console, shipped in the wheel), or None when this build has none."""
    folder = Path(str(resources.files("pausable.server"))) / "console"
    return folder if (folder / "index.html").is_file() else None


class HttpCall:
    """What the handlers use of a gRPC call's context, for one HTTP request (grpc.aio.ServicerContext's subset)."""

    def __init__(self, request: web.Request, sink: Callable[[Any], Awaitable[None]] | None = None) -> None:
        self.request = request
        self.sink = sink
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._metadata = tuple((name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return f"http:{self.request.remote}"

    def auth_context(self) -> dict[str, list[bytes]]:
        """The verified client certificate's names, as gRPC's auth context has them (auth.certificate_subject)."""
        transport = self.request.transport
        certificate = transport.get_extra_info("peercert") if transport is not None else None
        if not certificate:
            return {}
        names = [value.encode() for kind, value in certificate.get("subjectAltName", ()) if kind in ("DNS", "URI", "email")]
        common = [value.encode() for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"]
        return {"x509_subject_alternative_name": names, "x509_common_name": common}

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self._code, self._details = code, details
        raise grpc.aio.AbortError()

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def time_remaining(self) -> float | None:
        return None

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    async def send_initial_metadata(self, metadata: Any) -> None:
        pass

    async def write(self, message: Any) -> None:
        assert self.sink is not None, "write is for streaming methods"
        await self.sink(message)

    def failure(self) -> tuple[grpc.StatusCode, str]:
        return self._code or grpc.StatusCode.UNKNOWN, self._details


def error_response(code: grpc.StatusCode, message: str) -> web.Response:
    return web.Response(status=HTTP_STATUS.get(code, 500), body=error_body(code, message), content_type=JSON)


def _large(reply: Message | Encoded[Any]) -> bool:
    return isinstance(reply, Encoded) and offload.large(len(reply.data))


async def reply_json(reply: Message | Encoded[Any]) -> bytes:
    """The reply's JSON; in the offload thread when it holds large values (offload.py)."""
    return await offload.off_loop_if(_large(reply), lambda: to_json(reply))


class EventJson:
    """Each stream message's event as JSON (the SSE data), made once for every subscriber: the hub hands one live message object to all the
    watchers of an operation, so 1,000 browsers following it cost one conversion per event, not 1,000."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.made: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()

    async def of(self, message: Any) -> bytes:
        found = self.made.get(id(message))
        if found is not None and found[0] is message:
            return found[1]
        text = await offload.off_loop_if(_large(message), lambda: to_json(message_of(message).event))  # type: ignore[attr-defined]
        self.made[id(message)] = (message, text)
        if len(self.made) > self.size:
            self.made.popitem(last=False)
        return text


class EventStream:
    """One Server-Sent Events response: opened (headers sent) on its first frame, one write per frame."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        self.lock = asyncio.Lock()

    @property
    def opened(self) -> bool:
        return self.response.prepared

    async def send(self, frame: bytes) -> None:
        async with self.lock:
            if not self.response.prepared:
                await self.response.prepare(self.request)
            try:
                await self.response.write(frame)
            except ConnectionError:
                raise asyncio.CancelledError() from None  # the client went away: what gRPC does to the handler then

    async def keep_alive(self) -> None:
        await asyncio.sleep(FIRST_COMMENT_SECONDS)
        while True:
            await self.send(b": keep-alive\n\n")
            await asyncio.sleep(KEEPALIVE_SECONDS)


def sse_frame(data: bytes, event_id: str = "", event: str = "") -> bytes:
    return b"".join(
        [
            f"id: {event_id}\n".encode() if event_id else b"",
            f"event: {event}\n".encode() if event else b"",
            b"data: ",
            data,
            b"\n\n",
        ]
    )


class Gateway:
    def __init__(self, settings: Settings, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.settings = settings
        self.handlers = handlers
        self.event_json = EventJson()
        self.runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_receive_message_bytes)
        for route in UNARY_ROUTES:
            app.router.add_route(route.http_method, route.path, self._unary(route))
        app.router.add_get(WATCH.path, self._watch)
        app.router.add_get(WATCH_EVENTS.path, self._watch_events)
        folder = console_files()
        if folder is not None:
            index = folder / "index.html"

            async def console(request: web.Request) -> web.StreamResponse:
                return web.FileResponse(index, headers=SECURITY_HEADERS)

            async def home(request: web.Request) -> web.StreamResponse:
                raise web.HTTPFound("/console/")

            app.router.add_get("/", home)
            app.router.add_get("/console/", console)
            app.router.add_static("/console/", folder, append_version=False)
            app.on_response_prepare.append(_console_headers)
        return app

    async def start(self, host: str) -> int:
        self.runner = web.AppRunner(
            self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=self.settings.grace_seconds
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, self.settings.http_port, ssl_context=self._tls(), reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or ()
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.shutdown()
            await self.runner.cleanup()

    def _tls(self) -> ssl.SSLContext | None:
        """The daemon's TLS certificate, and with client_ca a client certificate required, as on the gRPC port."""
        settings = self.settings
        if not (settings.tls_cert and settings.tls_key):
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(settings.client_ca)
        return context

    def _behavior(self, rpc: str) -> Callable[[Any, Any], Awaitable[Any]]:
        handler = self.handlers[SERVICE + rpc]
        behavior: Any = handler.unary_unary or handler.unary_stream
        return behavior

    def _unary(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        behavior = self._behavior(route.rpc)

        async def handle(request: web.Request) -> web.StreamResponse:
            call = HttpCall(request)
            try:
                body = await request.read() if route.body else b""
                message = request_from(route.request_type, request.match_info, request.query.items(), body)
            except BadRequest as error:
                return error_response(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            except web.HTTPRequestEntityTooLarge:
                limit = self.settings.max_receive_message_bytes
                return error_response(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the body is larger than {limit} bytes (setting max_receive_message_bytes); send less",
                )
            try:
                reply = await behavior(message, call)
            except grpc.aio.AbortError:
                return error_response(*call.failure())
            return web.Response(body=await reply_json(reply), content_type=JSON)

        return handle

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        resumed = request.headers.get("Last-Event-ID", "")
        if resumed and not resumed.isdigit():
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, f"Last-Event-ID {resumed[:40]!r} is not an event's seq")
        path = {**request.match_info, **({"afterSeq": resumed} if resumed else {})}
        return await self._stream(request, WATCH, path, event_id=lambda message: str(message.event.seq), ends=True)

    async def _watch_events(self, request: web.Request) -> web.StreamResponse:
        resumed = request.headers.get("Last-Event-ID", "")
        path = {"afterCursor": resumed} if resumed else {}
        return await self._stream(request, WATCH_EVENTS, path, event_id=lambda message: str(message.cursor), ends=False)

    async def _stream(
        self, request: web.Request, route: Route, path: dict[str, str], event_id: Callable[[Any], str], ends: bool
    ) -> web.StreamResponse:
        """A streaming method as Server-Sent Events: `id:` each message's resume point, `data:` its JSON; `event: end`
        when the stream ends (Watch after the terminal event), `event: error` with the status if it fails once open.
        A failure before the first frame is an HTTP error like a unary call's."""
        try:
            message = request_from(route.request_type, path, request.query.items())
        except BadRequest as error:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        stream = EventStream(request)
        event_json = self.event_json

        async def send(reply: Any) -> None:
            shown = reply.message if isinstance(reply, Encoded) else reply
            await stream.send(sse_frame(await event_json.of(reply), event_id(shown)))

        call = HttpCall(request, send)
        keep_alive = asyncio.create_task(stream.keep_alive())
        try:
            await self._behavior(route.rpc)(message, call)
        except grpc.aio.AbortError:
            if not stream.opened:
                return error_response(*call.failure())
            code, details = call.failure()
            await stream.send(sse_frame(error_body(code, details), event="error"))
        else:
            if ends:
                await stream.send(sse_frame(b"{}", event="end"))
        finally:
            keep_alive.cancel()
        return stream.response


async def _console_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/" or request.path.startswith("/console/"):
        response.headers.update(SECURITY_HEADERS)
