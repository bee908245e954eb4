"""reports: monthly client reports, as built and as sent

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12 09:00:00.000000

One stored rendering per (client, month, format), and one send per (client, month, channel,
resend): the unique keys keep racing schedulers and workers to one delivery per channel, and a
deliberate re-send takes the next `resend` number (ledger/report_rows.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "client", "month", "format", name="uq_report_files_client_month_format"
        ),
    )
    op.create_table(
        "report_sends",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("resend", sa.Integer(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "client", "month", "channel", "resend", name="uq_report_sends_client_month_channel"
        ),
    )
    op.create_index("ix_report_sends_status", "report_sends", ["status"])


def downgrade() -> None:
    op.drop_index("ix_report_sends_status", table_name="report_sends")
    op.drop_table("report_sends")
    op.drop_table("report_files")
