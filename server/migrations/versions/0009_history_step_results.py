"""Step history and forks: every step's result kept in step_results; operations know their parent (Fork) and when
their current step started

Revision ID: 0009_history
Revises: 0008

Operations started before this revision have no step history for the steps
they ran before it, no parent, and no start time for their current step.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_history"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("operation_id", sa.String(32), sa.ForeignKey("operations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("result_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("previous_json", sa.Text(), nullable=True),
    )
    op.create_index("ix_step_results_operation_id", "step_results", ["operation_id", "id"])
    op.add_column("operations", sa.Column("parent_id", sa.String(32), nullable=True))
    op.add_column("operations", sa.Column("forked_from_step", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("operations", sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_operations_parent_id", "operations", ["parent_id", "id"])


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN on SQLite too (3.35+): batch mode would copy the operations table and drop the
    # old one, and with foreign keys on that DROP deletes every event and label (ON DELETE CASCADE).
    op.drop_index("ix_operations_parent_id", table_name="operations")
    for column in ("step_started_at", "forked_from_step", "parent_id"):
        op.execute(f"ALTER TABLE operations DROP COLUMN {column}")
    op.drop_index("ix_step_results_operation_id", table_name="step_results")
    op.drop_table("step_results")
