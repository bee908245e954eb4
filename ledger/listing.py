"""The ledger's rows as the API lists them: a team's commitments of a period, a page at a time,
each read as the figures read it, with the exclusion that hides it from them.

Thin I/O over ledger.reading: the period rule (promised date within the period) and the
read-as-of rule (an overdue pending row is listed as `missed`, settled at its deadline, whether
or not the scheduler has stored it yet; `recorded_outcome` is what the row holds).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, func, select

from ledger.codec import utc
from ledger.reading import C, I, promised_in, promises, read_outcome, read_settled_at
from ledger.tables import Exclusion


def commitments_page(
    conn: Connection,
    *,
    team: str,
    period_from: date,
    period_to: date,
    as_of: datetime,
    page: int,
    per_page: int,
) -> tuple[int, list[dict]]:
    """(total, rows of the page) of the team's promises due in the period, oldest promise
    first; excluded rows included, each with its `exclusion`."""
    where = promises((C.c.team == team) & promised_in(period_from, period_to))
    total = conn.execute(select(func.count()).select_from(C).where(where)).scalar_one()
    stmt = (
        select(
            C,
            read_outcome(as_of).label("read_outcome"),
            read_settled_at(as_of).label("read_settled_at"),
            I.c.key.label("item_key"),
            I.c.title,
            I.c.scope,
        )
        .join(I, I.c.id == C.c.item_id)
        .where(where)
        .order_by(C.c.promised_date, C.c.item_id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = [
        {
            "item": r.item_key,
            "title": r.title,
            "scope": r.scope,
            "promised_date": r.promised_date.isoformat(),
            "first_promised": _iso(r.first_promised),
            "latest_promised": _iso(r.latest_promised),
            "promised_at": _iso(utc(r.promised_at)),
            "deadline": _iso(utc(r.deadline)),
            "outcome": r.read_outcome,
            "recorded_outcome": r.outcome,
            "settled_at": _iso(utc(r.read_settled_at)),
            "delivered_at": _iso(utc(r.delivered_at)),
            "slip_days": r.slip_days,
            "repromise_count": r.repromise_count,
            "small": bool(r.small),
            "excluded": bool(r.excluded),
            "exclusion": None,
        }
        for r in conn.execute(stmt)
    ]
    _attach_exclusions(conn, rows, [r["item"] for r in rows if r["excluded"]])
    return total, rows


def _attach_exclusions(conn: Connection, rows: list[dict], keys: list[str]) -> None:
    """Why, by whom and when an excluded row was excluded: exclusions are audited in the open,
    so whoever reads the ledger sees the reason next to the row it hides from the figures."""
    if not keys:
        return
    X = Exclusion.__table__
    active = conn.execute(
        select(I.c.key, X.c.reason, X.c.excluded_by, X.c.excluded_at)
        .join(X, X.c.item_id == I.c.id)
        .where(I.c.key.in_(keys), X.c.undone_at.is_(None))
        .order_by(X.c.excluded_at)
    )
    found = {
        key: {"reason": why, "by": who, "at": _iso(utc(when))} for key, why, who, when in active
    }
    for row in rows:
        if row["excluded"]:
            row["exclusion"] = found.get(row["item"])


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()
