"""Tracing switched off, or OpenTelemetry not installed: every hook is a no-op and adds nothing to the call path."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from pausable import tracing
from pausable.clients import AsyncClient, Client
from pausable.config import get_settings
from pausable.server import tracing as server_tracing
from pausable.workers import tracing as worker_tracing


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
    assert server_tracing.server_interceptors() == []
    channel = grpc.insecure_channel("127.0.0.1:1")
    assert tracing.traced_channel(channel) is channel
    channel.close()


def test_off_by_default(fresh_settings: pytest.MonkeyPatch) -> None:
    hooks_are_off()


def test_explicitly_off_wins_over_an_exporter_setting(fresh_settings: pytest.MonkeyPatch) -> None:
    fresh_settings.setenv("PAUSABLE_OTEL", "0")
    fresh_settings.setenv("PAUSABLE_OTEL_FILE", "/nonexistent/spans.jsonl")
    hooks_are_off()
    assert tracing.client_interceptors() == [] and tracing.aio_client_interceptors() == []


def test_without_opentelemetry_everything_still_works(fresh_settings: pytest.MonkeyPatch) -> None:
    """As when the otel extra is not installed (the module's import guard leaves `trace` None)."""
    fresh_settings.setattr(tracing, "trace", None)
    fresh_settings.setattr(tracing, "propagate", None)
    fresh_settings.setenv("PAUSABLE_OTEL", "1")
    fresh_settings.setenv("PAUSABLE_OTEL_FILE", "spans.jsonl")
    hooks_are_off()
    assert not worker_tracing.instrument()
    assert tracing.client_interceptors() == [] and tracing.aio_client_interceptors() == []
    with Client("127.0.0.1:1") as client:
        assert client.stub is not None

    async def make_and_close() -> None:
        async with AsyncClient("127.0.0.1:1") as aio:
            assert aio.stub is not None

    asyncio.run(make_and_close())


def test_sdk_follows_the_application_unless_told(fresh_settings: pytest.MonkeyPatch) -> None:
    """No tracer provider installed by the application: the SDK adds no interceptor; PAUSABLE_OTEL=1 forces one."""
    pytest.importorskip("opentelemetry.trace")
    assert tracing.client_interceptors() == []
    fresh_settings.setenv("PAUSABLE_OTEL", "1")
    assert [type(i) for i in tracing.client_interceptors()] == [tracing.ClientTracing]
    assert [type(i) for i in tracing.aio_client_interceptors()] == [tracing.AioClientTracing]
