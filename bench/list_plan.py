"""Postgres's plan for the common ListOperations filters, on 100,000 operations.

    python bench/list_plan.py

Starts a throwaway PostgreSQL cluster, migrates it, fills it with generated
operations (as in a long-lived store: 0.5% RUNNING, 0.5% PAUSED, 1% FAILED or
CANCELLED, the rest SUCCEEDED; 20 workflows, 50 requesters, 30 teams), and
prints EXPLAIN ANALYZE of the queries the store sends, to show they use indexes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the PostgreSQL cluster is test support (tests/support/servers.py), not in the wheel

from support.servers import PostgresServer

from pausable.server import migrate
from pausable.server.domain import OperationFilter
from pausable.server.models import OperationRow
from pausable.server.reads import filtered
from pausable.server.states import State
from pausable.server.store import make_engine

FILL = """
INSERT INTO operations (id, workflow, state, current_step, step_names, progress, progress_message, input_json,
                        plan, requester, labels, created_at, updated_at, last_seq)
SELECT lpad(to_hex(n), 12, '0') || md5(n::text)::varchar(20),
       'flow' || (n % 20),
       CASE n % 200 WHEN 0 THEN 'RUNNING' WHEN 1 THEN 'PAUSED' WHEN 2 THEN 'FAILED' WHEN 3 THEN 'CANCELLED' ELSE 'SUCCEEDED' END,
       0, '[]', 0, '', 'null', '[]', 'user' || (n % 50), '{}', now(), now(), 2
FROM generate_series(1, 100000) AS n;
INSERT INTO operation_labels (operation_id, key, value)
SELECT id, 'team', 'team' || (abs(hashtext(id)) % 30) FROM operations;
ANALYZE;
"""

CASES = {
    "state = PAUSED, newest 50": OperationFilter(states=[State.PAUSED]),
    "state IN (RUNNING, PAUSED), newest 50": OperationFilter(states=[State.RUNNING, State.PAUSED]),
    "workflow = flow7, newest 50": OperationFilter(workflow="flow7"),
    "workflow + state": OperationFilter(workflow="flow7", states=[State.RUNNING]),
    "label team=team3": OperationFilter(labels={"team": "team3"}),
    "requester = user9": OperationFilter(requester="user9"),
}


async def explain(url: str) -> None:
    engine = make_engine(url)
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        for statement in FILL.split(";"):
            if statement.strip():
                await conn.execute(text(statement))
    async with engine.connect() as conn:
        for title, where in CASES.items():
            query = filtered(where, select(OperationRow)).order_by(OperationRow.id.desc()).limit(51)
            sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            plan = (await conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) " + sql))).scalars().all()
            print(f"\n== {title}")
            print("\n".join(plan))
    await engine.dispose()


def main() -> None:
    with PostgresServer() as server:
        asyncio.run(explain(server.create_database("plan")))


if __name__ == "__main__":
    main()
