"""Identity: request_id unique per requester (with a hash of the request), the actor of each event

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# 0001 created the request_id unique constraint unnamed: Postgres named it operations_request_id_key;
# on SQLite the batch (table copy) finds it by this naming convention.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique() -> str:
    return "uq_operations_request_id" if op.get_bind().dialect.name == "sqlite" else "operations_request_id_key"


def upgrade() -> None:
    with op.batch_alter_table("operations", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_constraint(_old_unique(), type_="unique")
        batch.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_operations_requester_request_id", ["requester", "request_id"])
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("actor", sa.String(length=200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("actor")
    with op.batch_alter_table("operations", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_constraint("uq_operations_requester_request_id", type_="unique")
        batch.drop_column("request_hash")
        batch.create_unique_constraint(_old_unique(), ["request_id"])
