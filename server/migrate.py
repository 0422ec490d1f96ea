"""Apply the Alembic migrations to the store.

On start the daemon reads the store's revision and, only when it is not
HEAD, runs Alembic in a short-lived child process (`python -m
pausable.server.migrate`, the URL in PAUSABLE_MIGRATE_URL). Imported in the
daemon, Alembic and the templating it pulls in (Mako, Pygments) would stay
in its memory for its whole life.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0011_partial_indexes"  # the newest revision in migrations/versions; tests/unit/test_migration_head.py checks it
URL_VARIABLE = "PAUSABLE_MIGRATE_URL"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def current_revision(engine: AsyncEngine) -> str | None:
    """The store's Alembic revision; None for an empty store."""
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except DBAPIError:
        return None


async def ensure_current(engine: AsyncEngine) -> None:
    """Bring the store to HEAD, in a child process, unless it is there already."""
    if await current_revision(engine) == HEAD:
        return
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pausable.server.migrate",
        env={**os.environ, URL_VARIABLE: engine.url.render_as_string(hide_password=False)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"migrating the store to revision {HEAD} failed:\n{output.decode(errors='replace')}")


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def _upgrade_url(url: str) -> None:
    from pausable.server.store import make_engine

    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(_upgrade_url(os.environ[URL_VARIABLE]))
