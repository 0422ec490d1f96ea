"""Alembic: upgrade from empty, downgrade to empty, upgrade again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect

from pausable.server import migrate
from pausable.server.store import make_engine

TABLES = {"operations", "operation_labels", "events", "requests", "workflows"}


def test_upgrade_downgrade_upgrade(tmp_path: Path, make_database: Callable[[Path], str]) -> None:
    async def tables(engine) -> set[str]:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names())) - {"alembic_version"}

    url = make_database(tmp_path)

    async def scenario() -> None:
        engine = make_engine(url)
        try:
            await migrate.upgrade(engine)
            assert await tables(engine) == TABLES
            await migrate.downgrade(engine)
            assert await tables(engine) == set()
            await migrate.upgrade(engine)
            assert await tables(engine) == TABLES
        finally:
            await engine.dispose()

    asyncio.run(scenario())
