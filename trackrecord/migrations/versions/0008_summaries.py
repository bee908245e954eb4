"""summaries: one living milestone summary per (team, scope)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-11 09:00:00.000000

Where the summary lives (the milestone's description, or a comment on a tracking issue), and
the ledger version it was last rendered from, so an older rendering never overwrites a newer
one (ledger/summaries.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "summaries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rendered_version", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("comment_id", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team", "scope", name="uq_summaries_team_scope"),
    )


def downgrade() -> None:
    op.drop_table("summaries")
