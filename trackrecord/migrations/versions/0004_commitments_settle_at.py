"""commitments.settle_at and its settlement-order index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 08:20:00.000000

`settle_at` is the moment a promise is settled as the figures read it (ledger.tables.
settle_instant): settled_at, else delivered_at; for a pending row its deadline; NULL for rows
that are not promises. Existing rows are filled from their own columns. The index on
(team, settle_at, item_id, outcome, excluded) lets the streaks read rows in settlement order.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# ledger.tables.settle_instant in SQL, as the rule stood at 0004, frozen here: a migration
# must not change with the code.
SETTLE_AT_SQL = (
    "CASE WHEN promised_date IS NULL OR outcome NOT IN "
    "('early', 'on_time', 'late', 'missed', 'dropped', 'descoped', 'pending') THEN NULL "
    "WHEN outcome = 'pending' THEN deadline ELSE coalesce(settled_at, delivered_at) END"
)


def upgrade() -> None:
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settle_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"UPDATE commitments SET settle_at = {SETTLE_AT_SQL}")
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commitments_team_settle",
            ["team", "settle_at", "item_id", "outcome", "excluded"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_index("ix_commitments_team_settle")
        batch_op.drop_column("settle_at")
