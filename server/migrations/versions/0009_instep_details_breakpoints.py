"""In-step steering: a running step's saved details, and a pending breakpoint

Revision ID: 0009_instep
Revises: 0008

`details_json` / `details_step`: the JSON a step saved (checkpoint(), pause_here()) and the plan index of the step it
belongs to; when that step runs again its resume_details() returns it. `pause_before_step`: the user step number a
Pause(before_step=N) waits for (0: none).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_instep"
down_revision = "0009_history"
branch_labels = None
depends_on = None


COLUMNS = ("details_json", "details_step", "pause_before_step")


def upgrade() -> None:
    # Plain ALTER TABLE, also on SQLite (3.35+ drops columns in place): a batch operation would copy the operations
    # table, and dropping the old copy deletes every event of every operation (ON DELETE CASCADE).
    op.add_column("operations", sa.Column("details_json", sa.Text(), nullable=True))
    op.add_column("operations", sa.Column("details_step", sa.Integer(), nullable=False, server_default="-1"))
    op.add_column("operations", sa.Column("pause_before_step", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("operations", column)
