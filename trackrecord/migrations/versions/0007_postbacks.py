"""postbacks: comments posted back on settled items, exactly once

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00.000000

One row per (item, kind) (issue 9): written with the ledger change that settled the item on
the webhook path, claimed by the job before it posts, and holding the platform's comment id
once posted. The unique key is what keeps a redelivery, a replay or two racing workers to one
comment (ledger/postbacks.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "postbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=300), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("comment_id", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "kind", name="uq_postbacks_item_kind"),
    )
    op.create_index("ix_postbacks_team", "postbacks", ["team"])
    op.create_index("ix_postbacks_status", "postbacks", ["status"])


def downgrade() -> None:
    op.drop_index("ix_postbacks_status", table_name="postbacks")
    op.drop_index("ix_postbacks_team", table_name="postbacks")
    op.drop_table("postbacks")
