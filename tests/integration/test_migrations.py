"""Alembic: upgrade from empty, downgrade to empty, upgrade again."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, MetaData, Table, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pausable.server import migrate
from pausable.server.store import make_engine

TABLES = {
    "operations",
    "operation_labels",
    "events",
    "requests",
    "workflows",
    "outbox",
    "step_results",
    "bulk_actions",
    "stage_members",
}


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


async def tables_of(conn: AsyncConnection) -> dict[str, Table]:
    """The store's tables as they are now (reflected)."""

    def reflected(sync: Connection) -> MetaData:
        metadata = MetaData()
        metadata.reflect(sync)
        return metadata

    return dict((await conn.run_sync(reflected)).tables)


async def one_operation_at(engine: AsyncEngine, revision: str, operation_id: str, state: str = "RUNNING", step: int = 0) -> None:
    """Migrates an empty store to `revision` and stores there one operation with its CREATED event (actor "ada")."""
    now = datetime.now(UTC)
    await migrate.upgrade(engine, revision)
    async with engine.begin() as conn:
        tables = await tables_of(conn)
        await conn.execute(
            tables["operations"].insert().values(
                id=operation_id, workflow="w", state=state, current_step=step, step_names=[], progress=0.0,
                progress_message="", input_json="null", plan=[], requester="", labels={}, created_at=now,
                updated_at=now, last_seq=1,
            )
        )  # fmt: skip
        event = {"seq": 1, "type": "CREATED", "message": "", "snapshot": {}, "created_at": now, "actor": "ada"}
        await conn.execute(tables["events"].insert().values(operation_id=operation_id, **event))


def scenario(url: str, steps: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    """`steps` on a store engine of `url`, disposed of after."""

    async def run() -> None:
        engine = make_engine(url)
        try:
            await steps(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_0008_gives_every_stored_event_an_empty_reason_and_its_downgrade_drops_the_column(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    """Events written before 0008 read back with reason "" (the server default); downgrading to 0007 keeps them."""

    async def steps(engine: AsyncEngine) -> None:
        await one_operation_at(engine, "0007", "a" * 32)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            events = (await tables_of(conn))["events"]
            assert (await conn.execute(select(events.c.actor, events.c.reason))).all() == [("ada", "")]
        await migrate.downgrade(engine, "0007")
        async with engine.connect() as conn:
            events = (await tables_of(conn))["events"]
            assert "reason" not in events.c
            assert (await conn.execute(select(events.c.seq, events.c.actor))).all() == [(1, "ada")]

    scenario(make_database(tmp_path), steps)


def test_0009_keeps_stored_operations_and_events_both_ways_and_its_downgrade_drops_the_step_history(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    """Operations from before 0009 read back as no fork with no step history; downgrading to 0008 keeps them and
    their events (SQLite: no copy of the operations table, whose drop would cascade to the events)."""

    async def steps(engine: AsyncEngine) -> None:
        await one_operation_at(engine, "0008", "b" * 32, state="FAILED", step=1)
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            tables = await tables_of(conn)
            operations = tables["operations"]
            stored = (await conn.execute(select(operations.c.parent_id, operations.c.forked_from_step))).all()
            assert stored == [(None, 0)]
            await conn.execute(
                tables["step_results"]
                .insert()
                .values(operation_id="b" * 32, kind="result", step=0, step_number=1, ended_at=datetime.now(UTC), result_json="1")
            )
        await migrate.downgrade(engine, "0008")
        async with engine.connect() as conn:
            tables = await tables_of(conn)
            assert "step_results" not in tables and "parent_id" not in tables["operations"].c
            assert (await conn.execute(select(tables["events"].c.seq, tables["events"].c.actor))).all() == [(1, "ada")]

    scenario(make_database(tmp_path), steps)


def test_0009_instep_gives_stored_operations_no_details_nor_breakpoint_and_keeps_their_events_both_ways(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    """0009_instep adds details_json, details_step and pause_before_step in place (no table copy: a copy of
    operations would delete its events by ON DELETE CASCADE on SQLite), and its downgrade drops them the same way."""

    async def steps(engine: AsyncEngine) -> None:
        await one_operation_at(engine, "0008", "a" * 32)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            tables = await tables_of(conn)
            operations = tables["operations"]
            new = select(operations.c.details_json, operations.c.details_step, operations.c.pause_before_step)
            assert (await conn.execute(new)).all() == [(None, -1, 0)]
            assert (await conn.execute(select(tables["events"].c.seq))).all() == [(1,)]
        await migrate.downgrade(engine, "0008")
        async with engine.connect() as conn:
            tables = await tables_of(conn)
            assert "pause_before_step" not in tables["operations"].c
            assert (await conn.execute(select(tables["events"].c.seq))).all() == [(1,)]

    scenario(make_database(tmp_path), steps)


def test_0010_gives_stored_operations_no_stage_and_keeps_their_events_both_ways(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    """0010_stages adds the member counters in place (no table copy, see above) and stage_members; its downgrade drops
    them the same way, and the outbox's members column."""

    async def steps(engine: AsyncEngine) -> None:
        await one_operation_at(engine, "0009_timebulk", "c" * 32)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            tables = await tables_of(conn)
            operations = tables["operations"]
            counters = select(operations.c.members_total, operations.c.members_done, operations.c.members_running)
            assert (await conn.execute(counters)).all() == [(0, 0, 0)]
            assert "members" in tables["outbox"].c and "stage_members" in tables
        await migrate.downgrade(engine, "0009_timebulk")
        async with engine.connect() as conn:
            tables = await tables_of(conn)
            assert "members_total" not in tables["operations"].c and "members" not in tables["outbox"].c
            assert "stage_members" not in tables
            assert (await conn.execute(select(tables["events"].c.seq, tables["events"].c.actor))).all() == [(1, "ada")]

    scenario(make_database(tmp_path), steps)


PARTIAL = {  # 0011: index -> a query of the store's that reads it (its shape: store_durability.py, reads.py)
    "ix_operations_ended_at": "SELECT id FROM operations WHERE ended_at < :t AND state IN ('SUCCEEDED', 'FAILED') LIMIT 5",
    "ix_operations_parent_id": "SELECT id FROM operations WHERE parent_id = :p ORDER BY id",
    "ix_operations_deadline_at": "SELECT id FROM operations WHERE deadline_at < :t AND coalesce(state, '') IN ('RUNNING') "
    "ORDER BY deadline_at LIMIT 5",
    "ix_operations_pause_due_at": "SELECT id FROM operations WHERE pause_due_at < :t AND coalesce(state, '') = 'PAUSED' "
    "ORDER BY pause_due_at LIMIT 5",
}


def test_0011_indexes_only_the_set_values_and_the_queries_still_read_them(
    tmp_path: Path, make_database: Callable[[Path], str]
) -> None:
    """The four indexes hold only rows whose column is set; each query that read its index with the full index still
    does, and none scans the table (PostgreSQL with sequential scans off, as an empty table would otherwise be
    scanned); the downgrade restores the full indexes, and an upgrade the partial ones again."""

    async def plans(conn: AsyncConnection) -> dict[str, set[str]]:
        """The indexes each query is planned through."""
        params = {"t": datetime.now(UTC), "p": "x" * 32}
        found = {}
        for index, query in PARTIAL.items():
            if conn.dialect.name == "sqlite":
                rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {query}"), params)
            else:
                await conn.execute(text("SET enable_seqscan = off"))
                rows = await conn.execute(text(f"EXPLAIN {query}"), params)
            found[index] = set(re.findall(r"ix_operations_\w+", " ".join(str(row[-1]) for row in rows)))
        return found

    async def partial(conn: AsyncConnection) -> dict[str, bool]:
        def indexes(sync: Connection) -> dict[str, bool]:
            found = inspect(sync).get_indexes("operations")
            where = {"sqlite": "sqlite_where", "postgresql": "postgresql_where"}[sync.dialect.name]
            return {i["name"]: i.get("dialect_options", {}).get(where) is not None for i in found if i["name"] in PARTIAL}

        return await conn.run_sync(indexes)

    async def steps(engine: AsyncEngine) -> None:
        await one_operation_at(engine, "0010_stages", "d" * 32)
        async with engine.connect() as conn:
            assert await partial(conn) == dict.fromkeys(PARTIAL, False)
            before = await plans(conn)
        assert sum(index in plan for index, plan in before.items()) >= 3, before  # (SQLite's purge reads ix_operations_state_id)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert await partial(conn) == dict.fromkeys(PARTIAL, True)
            after = await plans(conn)
        for index in PARTIAL:  # no query scans the table now, and each that read its index still does
            assert after[index] and ({index} & before[index]) <= after[index], (index, before[index], after[index])
        await migrate.downgrade(engine, "0010_stages")
        async with engine.connect() as conn:
            assert await partial(conn) == dict.fromkeys(PARTIAL, False)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert await partial(conn) == dict.fromkeys(PARTIAL, True)
            assert (await conn.execute(text("SELECT count(*) FROM operations"))).scalar() == 1

    scenario(make_database(tmp_path), steps)
