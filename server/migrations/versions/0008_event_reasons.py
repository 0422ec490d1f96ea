"""Reasons: the free-text note of why given with a Pause, Resume or Cancel, on the events it appended

Revision ID: 0008
Revises: 0007

Events written before this revision have none (the empty string), as do the
events no command caused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("reason")
