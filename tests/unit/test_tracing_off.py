"""Tracing switched off, or OpenTelemetry not installed: every hook is a no-op and adds nothing to the call path."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import grpc
import pytest

from pausable import tracing
from pausable.clients import AsyncClient, Client
from pausable.config import get_settings


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch):
    """get_settings() is cached: clear it around a test that changes PAUSABLE_* variables."""
    for name in ("PAUSABLE_OTEL", "PAUSABLE_OTEL_FILE", *tracing.OTLP_ENDPOINTS):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def hooks_are_off() -> None:
    assert not tracing.enabled()
    assert tracing.headers() == {}
    assert tracing.server_interceptors() == []
    channel = grpc.insecure_channel("127.0.0.1:1")
    assert tracing.traced_channel(channel) is channel
    assert not tracing.instrument_worker()
    channel.close()


def sdk_is_off() -> None:
    channel = grpc.insecure_channel("127.0.0.1:1")
    assert tracing.client_channel(channel) is channel
    assert tracing.aio_client_interceptors() == []
    channel.close()


def test_off_by_default(fresh_settings: pytest.MonkeyPatch) -> None:
    hooks_are_off()


def test_explicitly_off_wins_over_an_exporter_setting(fresh_settings: pytest.MonkeyPatch) -> None:
    fresh_settings.setenv("PAUSABLE_OTEL", "0")
    fresh_settings.setenv("PAUSABLE_OTEL_FILE", "/nonexistent/spans.jsonl")
    hooks_are_off()
    sdk_is_off()


def test_without_opentelemetry_everything_still_works(fresh_settings: pytest.MonkeyPatch) -> None:
    """As when the otel extra is not installed (the module's import guard leaves `trace` None)."""
    fresh_settings.setattr(tracing, "trace", None)
    fresh_settings.setattr(tracing, "propagate", None)
    fresh_settings.setenv("PAUSABLE_OTEL", "1")
    fresh_settings.setenv("PAUSABLE_OTEL_FILE", "spans.jsonl")
    hooks_are_off()
    sdk_is_off()
    with Client("127.0.0.1:1") as client:
        assert client.stub is not None

    async def make_and_close() -> None:
        async with AsyncClient("127.0.0.1:1") as aio:
            assert aio.stub is not None

    asyncio.run(make_and_close())


def test_sdk_follows_the_application_unless_told(fresh_settings: pytest.MonkeyPatch) -> None:
    """No tracer provider installed by the application: the SDK adds no interceptor; PAUSABLE_OTEL=1 forces one."""
    pytest.importorskip("opentelemetry.trace")
    sdk_is_off()
    fresh_settings.setenv("PAUSABLE_OTEL", "1")
    channel = grpc.insecure_channel("127.0.0.1:1")
    assert tracing.client_channel(channel) is not channel
    assert {type(i).__module__ for i in tracing.aio_client_interceptors()} == {"opentelemetry.instrumentation.grpc._aio_client"}
    channel.close()


def test_the_daemon_does_not_load_the_instrumentations_when_off() -> None:
    """Tracing off costs the daemon nothing: no interceptor, and OpenTelemetry's instrumentations are never imported."""
    code = (
        "import sys; from pausable.server import app; from pausable import tracing;"
        "assert tracing.server_interceptors() == [] and tracing.headers() == {};"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.instrumentation')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAUSABLE_OTEL", "OTEL_"))}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert (run.returncode, run.stdout.strip()) == (0, "[]"), run.stderr
