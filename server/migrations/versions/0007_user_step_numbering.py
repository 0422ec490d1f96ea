"""Users count their own steps: operations keep step_number and step_count beside the plan's current_step and total_steps

Revision ID: 0007
Revises: 0006

Plan entries a worker inserted (tappable's pause points, the closing
pausable.finish) are marked `"inserted": true` in the plans registered from
now on and are not counted (pausable.server.states.Numbering). The plans of
operations started before this revision carry no mark, so every entry
counts there, as it did: step_count is total_steps and step_number is
current_step + 1, at most total_steps.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("step_number", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("step_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE operations SET step_count = total_steps, "
        "step_number = CASE WHEN current_step + 1 < total_steps THEN current_step + 1 ELSE total_steps END"
    )


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("step_count")
        batch.drop_column("step_number")
