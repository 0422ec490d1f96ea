"""Stages of parallel members

Revision ID: 0010_stages
Revises: 0009_timebulk

operations: the running stage's member counts (members_total, members_done,
members_running), the next member index to dispatch (members_next), and how
many done members an event has named and when (members_announced, _at).

stage_members: each member of a running stage that was sent (with its lease,
renewed by the worker holding it) or finished (its result, once per
(operation, step, member)); deleted when the stage joins.

outbox: a stage's dispatch names the members it sends (members, JSON).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_stages"
down_revision = "0009_timebulk"
branch_labels = None
depends_on = None

COUNTERS = ("members_total", "members_done", "members_running", "members_next", "members_announced")


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        for column in COUNTERS:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("members_announced_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("members", sa.JSON(), nullable=True))
    op.create_table(
        "stage_members",
        sa.Column("operation_id", sa.String(length=32), sa.ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("member", sa.Integer(), primary_key=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_index("ix_stage_members_lease_expires_at", "stage_members", ["lease_expires_at"])


def downgrade() -> None:
    """On SQLite the columns go with ALTER TABLE ... DROP COLUMN (SQLite 3.35+), never a batch copy of `operations`,
    whose drop would delete every event and label with it (ON DELETE CASCADE)."""
    op.drop_index("ix_stage_members_lease_expires_at", table_name="stage_members")
    op.drop_table("stage_members")
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in (("outbox", ("members",)), ("operations", (*COUNTERS, "members_announced_at"))):
        for column in columns:
            if sqlite:
                op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
            else:
                op.drop_column(table, column)
