"""ledger tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 07:47:19.526286
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("item_type", sa.String(length=32), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_by", sa.String(length=255), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("size", sa.String(length=16), nullable=True),
        sa.Column("story_points", sa.Float(), nullable=True),
        sa.Column("scope", sa.String(length=300), nullable=True),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("first_response_seconds", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_items_scope"), ["scope"], unique=False)
        batch_op.create_index(batch_op.f("ix_items_team"), ["team"], unique=False)

    op.create_table(
        "commitments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=False),
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("promised_date", sa.Date(), nullable=True),
        sa.Column("first_promised", sa.Date(), nullable=True),
        sa.Column("latest_promised", sa.Date(), nullable=True),
        sa.Column("promised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slip_days", sa.Integer(), nullable=True),
        sa.Column("repromise_count", sa.Integer(), nullable=False),
        sa.Column("small", sa.Boolean(), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id"),
    )
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commitments_client_promised", ["client", "promised_date"], unique=False
        )
        batch_op.create_index(
            "ix_commitments_team_promised", ["team", "promised_date"], unique=False
        )
        batch_op.create_index("ix_commitments_team_settled", ["team", "settled_at"], unique=False)

    op.create_table(
        "exclusions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("excluded_by", sa.String(length=255), nullable=False),
        sa.Column("excluded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_by", sa.String(length=255), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("exclusions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exclusions_item_id"), ["item_id"], unique=False)

    op.create_table(
        "item_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "event_id", name="uq_item_events_item_event"),
    )
    op.create_table(
        "promise_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promised_date", sa.Date(), nullable=True),
        sa.Column("scope", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "at", "seq", name="uq_promise_changes"),
    )


def downgrade() -> None:
    op.drop_table("promise_changes")
    op.drop_table("item_events")
    with op.batch_alter_table("exclusions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exclusions_item_id"))

    op.drop_table("exclusions")
    with op.batch_alter_table("commitments", schema=None) as batch_op:
        batch_op.drop_index("ix_commitments_team_settled")
        batch_op.drop_index("ix_commitments_team_promised")
        batch_op.drop_index("ix_commitments_client_promised")

    op.drop_table("commitments")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_team"))
        batch_op.drop_index(batch_op.f("ix_items_scope"))

    op.drop_table("items")
