"""One settings object for the daemon, the workers and the CLI.

Every field can be set by a `PAUSABLE_<FIELD>` environment variable; the CLI
turns its flags into the same fields and takes their defaults and help from
here (pausable.cli.options). The defaults are the embedded ones that
`pausable dev` uses: SQLite in the current folder, the daemon on loopback.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The example workflows (demo.etl, demo.tapped, demo.long, demo.fanout): loaded by `pausable dev` and the test launchers, never by default.
EXAMPLES_MODULE = "pausable.workers.examples.demo"
# OperationError.traceback keeps a failed step's traceback's end: workers send at most this, the daemon keeps at most this.
MAX_TRACEBACK_CHARS = 16 << 10
MAX_DETAILS_BYTES = 64 << 10  # a step's checkpoint details (workers' checkpoint(), pause_here()), as compact JSON


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAUSABLE_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///pausable.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://user@host/db",
    )
    broker_url: str = Field(default="redis://127.0.0.1:6379/0", description="Celery broker URL (Redis)")
    listen: str = Field(default="127.0.0.1:50151", description="host:port the daemon listens on")
    daemon: str = Field(
        default="127.0.0.1:50151",
        description="the daemon for workers and clients: host:port, a comma-separated list of ip:port, or dns:///name:port",
    )
    grace_seconds: float = Field(default=5.0, description="how long SIGTERM waits for calls in flight")
    watch_buffer: int = Field(default=256, description="live events buffered per watcher before it catches up from the store")
    replica: str = Field(default="", description="this daemon's name among replicas on one store; random when empty")
    retention_seconds: float = Field(
        default=30 * 24 * 3600, description="finished operations older than this are purged with their events; 0 keeps them"
    )
    purge_interval_seconds: float = Field(default=300.0, description="how often the daemon purges, in batches")
    purge_batch: int = Field(default=500, description="operations deleted per purge transaction")
    metrics_port: int = Field(
        default=0, description="serve Prometheus metrics over HTTP on this port (on the host of `listen`); 0 serves none"
    )
    http_port: int = Field(
        default=0,
        description="serve the HTTP/JSON gateway and the web console on this port (on the host of `listen`); 0 serves none",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`pausable serve` and `pausable worker` logs: text, or json (one object per line, with operation_id)",
    )
    log_flush_seconds: float = Field(
        default=0.1,
        ge=0,
        description="`pausable serve` writes its DEBUG and INFO lines in batches, at most this long after they were logged "
        "(WARNING and above at once); 0 writes each line as it comes",
    )
    health_interval_seconds: float = Field(
        default=1.0, description="how often the daemon probes the store and the broker for its health service"
    )
    health_timeout_seconds: float = Field(
        default=1.0, description="how long one store or broker probe may take before it counts as failed"
    )
    step_lease_seconds: float = Field(
        default=60.0,
        description="a step no live worker holds (and no queue holds its message) for this long runs again; workers renew every third of it",
    )
    default_max_attempts: int = Field(
        default=3,
        ge=1,
        description="how many times a lost step may run before its operation FAILS with WORKER_LOST, for workflows that set no max_attempts",
    )
    outbox_grace_seconds: float = Field(
        default=10.0, description="a chain committed as dispatched and not known sent after this long is published again"
    )
    worker_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "modules that register workflows, imported by `pausable worker`: a,b or a JSON list "
            f"(none by default; `pausable dev` adds the examples, {EXAMPLES_MODULE})"
        ),
    )
    require_step_tokens: bool = Field(
        default=True,
        description=(
            "refuse worker reports without a step token (the pausable_step_token header of the step's message); "
            "off only while workers older than step tokens still run"
        ),
    )
    demo_dir: str = Field(
        default=".pausable/demo",
        description="the example workflow demo.etl writes its trace_file and output_dir only under this folder "
        "(of the worker; relative to its working directory)",
    )
    otel: str = Field(
        default="",
        description="OpenTelemetry tracing in the daemon and workers (otel extra): 1 on, 0 off, empty: on when otel_file or OTLP is set",
    )
    otel_file: str = Field(default="", description="append finished spans as JSON lines to this file (see pausable.tracing)")
    # -- security (see server/auth.py and the README's "Security") --
    tls_cert: str = Field(default="", description="the daemon's TLS certificate chain (PEM file); with tls_key, serve TLS")
    tls_key: str = Field(default="", description="the daemon's TLS private key (PEM file)")
    client_ca: str = Field(
        default="", description="CA bundle (PEM) for mutual TLS: a client certificate it signed names the caller (SAN, else CN)"
    )
    client_cert_roles: dict[str, list[str]] = Field(
        default_factory=lambda: {"*": ["operator"]},
        description='roles of client-certificate identities, JSON {"identity": ["role", ...]}; "*" for any other',
    )
    jwt_secret: str = Field(default="", description="shared HS256 secret: accept bearer JWTs signed with it")
    jwt_jwks_file: str = Field(default="", description="JWKS file (JSON): accept bearer JWTs signed by one of its keys")
    jwt_issuer: str = Field(default="", description="the `iss` every JWT must carry (empty: not checked)")
    jwt_audience: str = Field(default="", description="the `aud` every JWT must carry (empty: not checked)")
    jwt_roles_claim: str = Field(default="roles", description="the JWT claim that lists the caller's roles")
    tokens_file: str = Field(
        default="",
        description="static tokens: JSON {sha256(token) hex: {identity, roles}} or lines `sha256hex identity role,role`",
    )
    reflection: Literal["auto", "on", "off"] = Field(
        default="auto", description="serve gRPC server reflection: auto = only when no authentication mode is configured"
    )
    insecure: bool = Field(
        default=False, description="let `pausable serve` listen on a non-loopback address without any authentication"
    )
    # -- clients and workers --
    token: str = Field(default="", description="bearer token clients (CLI, SDK) send to the daemon")
    token_file: str = Field(default="", description="file holding the bearer token clients send (read at start)")
    worker_token: str = Field(default="", description="bearer token `pausable worker` sends to the daemon (role worker)")
    worker_token_file: str = Field(default="", description="file holding the worker's bearer token")
    tls_ca: str = Field(default="", description="clients and workers: CA bundle (PEM) to verify the daemon; set to use TLS")
    tls_client_cert: str = Field(default="", description="clients and workers: client certificate (PEM) for mutual TLS")
    tls_client_key: str = Field(default="", description="clients and workers: the client certificate's private key (PEM)")

    @property
    def auth_enabled(self) -> bool:
        """Whether any authentication mode is configured (bearer JWTs, static tokens or mutual TLS)."""
        return bool(self.jwt_secret or self.jwt_jwks_file or self.tokens_file or self.client_ca)

    # Limits (see pausable/server/limits.py): each breach answers INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming the setting.
    max_json_depth: int = Field(
        default=32,
        description="deepest JSON nesting (objects and lists) accepted in inputs, step results, schemas and plans; "
        "32 is the most a Value inside an Operation can hold within protobuf's decoding limit",
    )
    max_input_bytes: int = Field(default=1 << 20, description="largest operation input, as compact JSON text")
    max_result_bytes: int = Field(
        default=1 << 20, description="largest step result (result_json); a larger one fails its operation (RESULT_TOO_LARGE)"
    )
    max_workflow_bytes: int = Field(default=1 << 20, description="largest input schema or plan of one registered workflow")
    list_page_bytes: int = Field(
        default=4 << 20, description="a ListOperations page ends early (with a next_page_token) before it grows past this"
    )
    max_receive_message_bytes: int = Field(default=16 << 20, description="largest gRPC request message the daemon takes")
    max_concurrent_rpcs: int = Field(
        default=20_000, description="calls (Watch streams included) the daemon serves at once; more are RESOURCE_EXHAUSTED"
    )
    max_concurrent_streams: int = Field(default=4096, description="HTTP/2 streams (calls) at once on one client connection")
    min_ping_interval_seconds: float = Field(
        default=10.0, description="clients pinging more often than this (keepalive) are sent away (GOAWAY)"
    )
    max_streams_per_identity: int = Field(
        default=100,
        description="Watch and WatchEvents streams one authenticated identity may hold open at once "
        "(RESOURCE_EXHAUSTED beyond); 0: no limit",
    )
    rpc_rate_per_identity: float = Field(
        default=1000.0,
        description="calls per second one authenticated identity may make, as a token bucket (RESOURCE_EXHAUSTED beyond); "
        "workers and health are exempt; 0: no limit",
    )
    rpc_burst_per_identity: float = Field(
        default=2000.0, description="calls one identity may make at once before rpc_rate_per_identity applies (the bucket's size)"
    )
    offload_json_bytes: int = Field(
        default=8 << 10,
        description="inputs larger than this (protobuf bytes) are converted and checked against their schema in a thread, "
        "off the event loop; stored inputs and results larger than this (JSON bytes) become reply messages in a thread",
    )
    replay_page_bytes: int = Field(
        default=2 << 20,
        description="a page of events read from the store (Watch and WatchEvents replay, the WatchEvents feed) stops "
        "before its operation snapshots grow past this (at least one event per page)",
    )

    @field_validator("worker_modules", mode="before")
    @classmethod
    def _module_list(cls, value: Any) -> Any:
        return parse_module_list(value) if isinstance(value, str) else value


def parse_module_list(text: str) -> list[str]:
    """`a.b,c.d` or a JSON list: a comma-separated list is what people type, JSON is what `pausable worker` has always set."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return [name.strip() for name in text.split(",") if name.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
