"""deliveries.verified_sources: which sources a delivery's signature verified

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00.000000

A webhook is checked against every configured secret before its body is read, and the secret
that signed it decides which repositories or Jira projects it may speak for (issue 8). The
worker needs that answer: a Jira sprint or version event names no project, so it may reach only
the items of the projects using the secret that signed it. Rows stored before this revision
keep NULL (the worker then reads them as they were verified then: the source's own secret, or
the global Jira secret for site-wide events).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified_sources", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("verified_sources")
