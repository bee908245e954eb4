"""Claim before sending: the one mechanism behind everything the service posts or sends exactly
once (comments on items, `ledger.postbacks`; monthly report sends, `ledger.report_rows`).

A row is `pending` until a job claims it. The claim is an UPDATE whose WHERE is the lock: of
two racing jobs, one matches. A pending row handed back for later carries `not_before`; a
claimed row whose worker died is taken again once its claim is older than the lease. The
tables share the columns `status`, `attempts`, `claimed_at` and `not_before`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

PENDING, CLAIMED = "pending", "claimed"


def due(model, now: datetime):
    """Pending and not waiting for a later time."""
    return and_(model.status == PENDING, or_(model.not_before.is_(None), model.not_before <= now))


def stale(model, now: datetime, lease: timedelta):
    """Claimed by a job that has not finished within the lease (its worker died mid-send)."""
    return and_(model.status == CLAIMED, model.claimed_at <= now - lease)


def claimable(model, now: datetime, lease: timedelta):
    return or_(due(model, now), stale(model, now, lease))


def claim(session: Session, model, row_id: int, now: datetime, lease: timedelta) -> bool:
    """pending (due) or stale claimed -> claimed, one attempt more; False when another job has
    it or it is done."""
    return bool(
        session.execute(
            update(model)
            .where(model.id == row_id, claimable(model, now, lease))
            .values(status=CLAIMED, attempts=model.attempts + 1, claimed_at=now, not_before=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    )
