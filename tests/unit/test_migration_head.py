"""migrate.HEAD is Alembic's head (the daemon skips Alembic when the store is at HEAD)."""

from __future__ import annotations

from pausable.server import migrate


def test_head_names_the_newest_migration() -> None:
    """The daemon skips Alembic when the store is at migrate.HEAD, so HEAD must be Alembic's head."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.HEAD
