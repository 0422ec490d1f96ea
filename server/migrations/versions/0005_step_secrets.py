"""Step secrets: the secret of the dispatch that sent an operation's current step

Revision ID: 0005
Revises: 0004

Operations dispatched before this revision have none (NULL): their steps'
reports are refused while require_step_tokens is on, their leases lapse,
and the step runs again with a new secret.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("step_secret", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("step_secret")
