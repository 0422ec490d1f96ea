"""The outbox names each dispatch (operation, attempt, first step) instead of holding its messages

Revision ID: 0006
Revises: 0005

The sweep rebuilds a dispatch's messages from its operation row. An entry
written before this revision gets its operation's current step: an unsent
chain starts there (one already sent is then sent again, which its reports
make harmless).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("step", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE outbox SET step = (SELECT current_step FROM operations WHERE operations.id = outbox.operation_id)")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("steps")


def downgrade() -> None:
    # The old entries held their messages; none can be made here. The lease sweep dispatches a lost step again.
    op.execute("DELETE FROM outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("steps", sa.JSON(), nullable=False, server_default="[]"))
        batch.drop_column("step")
