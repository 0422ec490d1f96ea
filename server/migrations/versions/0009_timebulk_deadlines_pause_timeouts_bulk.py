"""Deadlines, pause timeouts and bulk actions

Revision ID: 0009_timebulk
Revises: 0008

operations: the running-time budget (deadline_seconds), what was used of it
before the current run (deadline_used_seconds) and when it runs out while
running (deadline_at); a pause timeout (pause_timeout_seconds,
pause_on_timeout) and when it is due while PAUSED (pause_due_at). Both times
are indexed: every replica's sweep looks for the ones due.

bulk_actions: one row per BulkPause/BulkResume/BulkCancel, its selection, its
progress and the cursor (the last operation id processed) that lets any
replica go on with it after a restart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_timebulk"
down_revision = "0009_instep"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("deadline_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("deadline_used_seconds", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("pause_timeout_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("pause_on_timeout", sa.String(length=16), nullable=False, server_default=""))
        batch.add_column(sa.Column("pause_due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_operations_deadline_at", "operations", ["deadline_at"])
    op.create_index("ix_operations_pause_due_at", "operations", ["pause_due_at"])
    op.create_table(
        "bulk_actions",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requester", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("owner", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("operation_ids", sa.JSON(), nullable=True),
        sa.Column("selector", sa.JSON(), nullable=True),
        sa.Column("cursor", sa.String(length=32), nullable=False, server_default=""),
        sa.Column("matched", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("done", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped_reasons", sa.JSON(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("requester", "request_id", name="uq_bulk_actions_requester_request_id"),
    )
    op.create_index("ix_bulk_actions_state", "bulk_actions", ["state"])


def downgrade() -> None:
    """On SQLite the columns go with ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch would copy `operations` into a
    new table and drop the old one, and the drop deletes every event and label with it (ON DELETE CASCADE)."""
    op.drop_index("ix_bulk_actions_state", table_name="bulk_actions")
    op.drop_table("bulk_actions")
    op.drop_index("ix_operations_pause_due_at", table_name="operations")
    op.drop_index("ix_operations_deadline_at", table_name="operations")
    for column in (
        "pause_due_at",
        "pause_on_timeout",
        "pause_timeout_seconds",
        "deadline_at",
        "deadline_used_seconds",
        "deadline_seconds",
    ):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE operations DROP COLUMN {column}")
        else:
            op.drop_column("operations", column)
