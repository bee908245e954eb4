"""The ledger's items behind a client's month: the rows a report names one by one (what went
well, what did not, what is promised next), each read as the figures read it.

The commitments come from `ledger.listing.commitments_page` (the API's rows, with the read-as-of
rule and the exclusion's reason); this module adds only what a report tells and the listing does
not: how often an item was reopened, and the unpromised deliveries by name (the record counts
them with `ledger.sql_figures.unpromised_deliveries`; the same conditions pick them here, and the
tests hold the two equal).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, false, func, select

from ledger import listing
from ledger.codec import utc
from ledger.events import EventKind
from ledger.outcomes import Outcome
from ledger.reading import C, I, at
from ledger.tables import ItemEvent

_PAGE = 500  # ledger.listing pages; the API's largest page


def commitments(
    conn: Connection, *, teams: list[str], period_from: date, period_to: date, as_of: datetime
) -> list[dict]:
    """Every promise of the teams due in the period (excluded ones too), each with its `team`
    and `reopened` count, oldest promise first."""
    rows: list[dict] = []
    for team in teams:
        page = 1
        while True:
            total, found = listing.commitments_page(
                conn,
                team=team,
                period_from=period_from,
                period_to=period_to,
                as_of=as_of,
                page=page,
                per_page=_PAGE,
            )
            rows += [{"team": team, **r} for r in found]
            if page * _PAGE >= total:
                break
            page += 1
    reopened = _reopened(conn, [r["item"] for r in rows])
    for r in rows:
        r["reopened"] = reopened.get(r["item"], 0)
    rows.sort(key=lambda r: (r["promised_date"], r["team"], r["item"]))
    return rows


def unpromised(conn: Connection, *, client: str, start: datetime, end: datetime) -> list[dict]:
    """The client's items delivered in [start, end) with no promise (excluded ones left out),
    in delivery order: the wins nobody asked for."""
    stmt = (
        select(I.c.key, I.c.title, C.c.team, C.c.delivered_at)
        .join(I, I.c.id == C.c.item_id)
        .where(
            C.c.client == client,
            C.c.outcome == Outcome.UNPROMISED.value,
            C.c.excluded == false(),
            C.c.delivered_at >= at(start),
            C.c.delivered_at < at(end),
        )
        .order_by(C.c.delivered_at, I.c.key)
    )
    return [
        {
            "item": key,
            "title": title,
            "team": team,
            "delivered_at": utc(delivered).isoformat(),
        }
        for key, title, team, delivered in conn.execute(stmt)
    ]


def _reopened(conn: Connection, keys: list[str]) -> dict[str, int]:
    """{item key: how many times it was reopened}, from the item's stored events."""
    if not keys:
        return {}
    stmt = (
        select(I.c.key, func.count())
        .join(ItemEvent, ItemEvent.item_id == I.c.id)
        .where(I.c.key.in_(keys), ItemEvent.kind == EventKind.REOPENED.value)
        .group_by(I.c.key)
    )
    return dict(conn.execute(stmt).all())
