"""scope events, team members, item_events.scope, exclusions.undo_reason

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 07:51:42.856583
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scope_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "event_id", name="uq_scope_events_scope_event"),
    )
    op.create_table(
        "team_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("login", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team", "source", "login", name="uq_team_members"),
    )
    with op.batch_alter_table("exclusions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("undo_reason", sa.Text(), nullable=True))

    with op.batch_alter_table("item_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=300), nullable=True))
        batch_op.create_index(batch_op.f("ix_item_events_scope"), ["scope"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_events_scope"))
        batch_op.drop_column("scope")

    with op.batch_alter_table("exclusions", schema=None) as batch_op:
        batch_op.drop_column("undo_reason")

    op.drop_table("team_members")
    op.drop_table("scope_events")
