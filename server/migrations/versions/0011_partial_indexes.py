"""Partial indexes for columns most operations leave empty

Revision ID: 0011_partial_indexes
Revises: 0010_stages

operations: ended_at, parent_id, deadline_at and pause_due_at are indexed
only where they are set (models.where_set): an index of NULLs cost each
started operation four b-tree inserts for nothing.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0011_partial_indexes"
down_revision = "0010_stages"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_operations_ended_at": ["ended_at"],
    "ix_operations_parent_id": ["parent_id", "id"],
    "ix_operations_deadline_at": ["deadline_at"],
    "ix_operations_pause_due_at": ["pause_due_at"],
}


def _recreate(partial: bool) -> None:
    for name, columns in INDEXES.items():
        op.drop_index(name, table_name="operations")
        where = text(f"{columns[0]} IS NOT NULL") if partial else None
        op.create_index(name, "operations", columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _recreate(partial=True)


def downgrade() -> None:
    _recreate(partial=False)
