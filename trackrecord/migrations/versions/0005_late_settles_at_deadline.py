"""late deliveries and late drops settle at their deadline: commitments.settle_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 09:00:00.000000

A promise not delivered by its deadline is settled as broken at the deadline (issue 4): a late
delivery stands in settlement order, and its trust evidence dates, from its deadline, where the
miss it was before the delivery stood, not from the delivery (ledger.tables.settle_instant).
Until now `settle_at` of a late row was its delivery, so delivering late moved a broken promise
after promises kept meanwhile (ending a streak that not delivering had left alone) and out of
the period its deadline fell in. Existing late rows are rewritten from their own columns; no
other row changes. The same statement on SQLite and PostgreSQL.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# ledger.tables.settle_instant for a late row, in SQL, frozen here: a migration must not
# change with the code. Rows with no promised date are not promises (settle_at stays NULL).
_LATE = "outcome = 'late' AND promised_date IS NOT NULL"


# A promise dropped after its deadline was broken at the deadline too.
_DROPPED_LATE = (
    "outcome = 'dropped' AND promised_date IS NOT NULL AND deadline IS NOT NULL "
    "AND deadline < coalesce(settled_at, delivered_at)"
)


def upgrade() -> None:
    op.execute(
        "UPDATE commitments SET settle_at = coalesce(deadline, settled_at, delivered_at) "
        f"WHERE {_LATE}"
    )
    op.execute(f"UPDATE commitments SET settle_at = deadline WHERE {_DROPPED_LATE}")


def downgrade() -> None:
    # 0004's value of a late row: its settlement, else its delivery.
    op.execute(
        f"UPDATE commitments SET settle_at = coalesce(settled_at, delivered_at) WHERE {_LATE}"
    )
    op.execute(
        "UPDATE commitments SET settle_at = coalesce(settled_at, delivered_at) "
        f"WHERE {_DROPPED_LATE}"
    )
