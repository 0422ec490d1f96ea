"""The Python SDK reads PAUSABLE_TOKEN / PAUSABLE_TOKEN_FILE when no token is passed (the worker's link does not)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pausable.clients import Client
from pausable.clients.aio import AsyncClient
from pausable.clients.common import client_token, read_token


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def metadata_of_both(**kwargs: str) -> tuple[object, object]:
    with Client("127.0.0.1:1", **kwargs) as client:  # type: ignore[arg-type]
        sync = client.metadata

    async def build() -> object:
        client = AsyncClient("127.0.0.1:1", **kwargs)  # type: ignore[arg-type]
        try:
            return client.metadata
        finally:
            await client.close()

    return sync, asyncio.run(build())


def test_environment_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PAUSABLE_TOKEN", raising=False)
    monkeypatch.delenv("PAUSABLE_TOKEN_FILE", raising=False)
    assert client_token() is None
    assert metadata_of_both() == ((), ())

    monkeypatch.setenv("PAUSABLE_TOKEN", "from-env")
    assert metadata_of_both() == (bearer("from-env"), bearer("from-env"))
    assert metadata_of_both(token="given") == (bearer("given"), bearer("given"))  # a passed token wins

    file = tmp_path / "token"
    file.write_text("from-file\n")
    assert metadata_of_both(token_file=str(file)) == (bearer("from-file"), bearer("from-file"))  # so does a passed file

    monkeypatch.delenv("PAUSABLE_TOKEN")
    monkeypatch.setenv("PAUSABLE_TOKEN_FILE", str(file))
    assert metadata_of_both() == (bearer("from-file"), bearer("from-file"))
    assert read_token() is None  # the plain reader (the worker's) never looks at the environment
