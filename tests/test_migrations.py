"""Alembic: upgrade from empty, downgrade to empty, upgrade again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import inspect

from pausable.server import migrate
from pausable.server.store import make_engine

TABLES = {"operations", "events", "requests", "workflows"}


def test_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    async def tables(engine) -> set[str]:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names())) - {"alembic_version"}

    async def scenario() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
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
