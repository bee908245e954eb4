"""scope_titles: the current name of each milestone, fix version or sprint

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12 09:00:00.000000

Scopes are keyed by number or id (stable across renames); their names are kept here for the
comments, the summaries and the API (ledger/scope_titles.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scope_titles",
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )


def downgrade() -> None:
    op.drop_table("scope_titles")
