"""Alembic: upgrade from empty, downgrade to empty, upgrade again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect

from pausable.server import migrate
from pausable.server.store import make_engine

TABLES = {"operations", "operation_labels", "events", "requests", "workflows", "outbox"}


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


def test_a_new_store_is_migrated_in_a_child_process_and_a_current_one_is_left_alone(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    url = make_database(tmp_path)

    async def scenario() -> None:
        engine = make_engine(url)
        try:
            assert await migrate.current_revision(engine) is None
            await migrate.ensure_current(engine)
            assert await migrate.current_revision(engine) == migrate.HEAD
            await migrate.ensure_current(engine)
        finally:
            await engine.dispose()

    asyncio.run(scenario())
