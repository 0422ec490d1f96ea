"""Step attempts and leases, per-workflow max attempts, the dispatch outbox

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_operations_lease_expires_at", "operations", ["lease_expires_at"])
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"))
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("operation_id", sa.String(length=32), sa.ForeignKey("operations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outbox_operation_id", "outbox", ["operation_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_operation_id", table_name="outbox")
    op.drop_table("outbox")
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("max_attempts")
    op.drop_index("ix_operations_lease_expires_at", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("max_attempts")
        batch.drop_column("attempt")
