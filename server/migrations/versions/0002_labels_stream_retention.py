"""Label rows, the global event stream's ordering, idempotent checkpoints, indexes for filters and retention

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "operation_labels",
        sa.Column("operation_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["operation_id"], ["operations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("operation_id", "key"),
    )
    op.create_index("ix_operation_labels_key_value", "operation_labels", ["key", "value", "operation_id"])
    tx_default = sa.text("(pg_current_xact_id()::text::bigint)") if postgres else sa.text("0")
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("state", sa.String(length=20), nullable=False, server_default=""))
        batch.add_column(sa.Column("tx", sa.BigInteger(), nullable=False, server_default=tx_default))
    op.create_index("ix_events_tx_id", "events", ["tx", "id"])
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("checkpoint_attempt", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("checkpoint_step", sa.Integer(), nullable=False, server_default="-1"))
        batch.add_column(sa.Column("checkpoint_decision", sa.String(length=16), nullable=False, server_default=""))
        batch.add_column(sa.Column("current_step_name", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("total_steps", sa.Integer(), nullable=False, server_default="0"))
    if postgres:
        op.execute(
            "UPDATE operations SET total_steps = json_array_length(step_names::json), "
            "current_step_name = coalesce(step_names::json ->> current_step, '')"
        )
    else:
        op.execute(
            "UPDATE operations SET total_steps = json_array_length(step_names), "
            "current_step_name = coalesce(json_extract(step_names, '$[' || current_step || ']'), '')"
        )
    op.create_index("ix_operations_requester_id", "operations", ["requester", "id"])
    op.create_index("ix_operations_workflow_state_id", "operations", ["workflow", "state", "id"])
    op.create_index("ix_operations_ended_at", "operations", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_operations_ended_at", table_name="operations")
    op.drop_index("ix_operations_workflow_state_id", table_name="operations")
    op.drop_index("ix_operations_requester_id", table_name="operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("total_steps")
        batch.drop_column("current_step_name")
        batch.drop_column("checkpoint_decision")
        batch.drop_column("checkpoint_step")
        batch.drop_column("checkpoint_attempt")
    op.drop_index("ix_events_tx_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("tx")
        batch.drop_column("state")
    op.drop_index("ix_operation_labels_key_value", table_name="operation_labels")
    op.drop_table("operation_labels")
