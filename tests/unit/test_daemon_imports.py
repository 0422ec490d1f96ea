"""What importing the daemon loads: Alembic runs in a child process, asyncpg and jsonschema only when needed."""

from __future__ import annotations


def test_the_daemon_keeps_migration_and_postgres_only_libraries_out_of_its_memory() -> None:
    """Alembic (with Mako and Pygments) runs in a child process, asyncpg loads only for Postgres, jsonschema only for a schema."""
    import subprocess
    import sys

    code = "import sys, pausable.server.app; print(sorted(m for m in ('alembic', 'mako', 'pygments', 'asyncpg', 'jsonschema') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
