"""PLACEHOLDER for revision 0004 (written on another branch): drop this file when merging that branch.

Revision ID: 0004
Revises: 0003

Only here so that 0005 (step secrets) has its down_revision on this branch.
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
