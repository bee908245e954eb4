"""deliveries.body compressed with lz4 on PostgreSQL

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 20:30:00.000000

A delivery's body (GitHub's run 5-25 KB) is compressed by PostgreSQL's TOAST as it is stored;
its default, pglz, took about 50 microseconds of the server's CPU an insert more than lz4 on
the intake benchmark's 8 KB bodies (docs/benchmarks.md), and the drain reads every body back.
Only rows written from now on change. Skipped where the server was built without lz4 (or is
older than PostgreSQL 14: no per-column compression), and on SQLite, which compresses nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _lz4_available(bind) -> bool:
    values = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    return bool(values) and "lz4" in values


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _lz4_available(bind):
        op.execute("ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _lz4_available(bind):
        op.execute("ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION DEFAULT")
