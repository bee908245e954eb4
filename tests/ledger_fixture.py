"""A small hand-made ledger written straight into the tables (no store, no events).

It is the worked example of docs/metrics.md (team `platform`, June 2024) plus what only the
database path meets: an overdue pending row, unpromised and linked deliveries, an excluded
unpromised one, first-response times on items, milestones, and another team's rows that must
never leak in. Expected figures are computed by hand in tests/test_queries.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import create_engine, insert, update

from ledger.tables import Commitment, Item, settle_instant


def at(month: int, day: int, hour: int = 0, year: int = 2024) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def row(key, outcome, promised=None, *, made=None, settled=None, delivered=None, slip=None,
        team="platform", scope=None, small=False, excluded=False, response_hours=None,
        opened=None):  # fmt: skip
    """One item and its commitment; a delivery settles it unless told otherwise. `promised` is
    (month, day) in 2024 or a date."""
    promised_date = date(2024, *promised) if isinstance(promised, tuple) else promised
    return {
        "key": key,
        "team": team,
        "client": "acme",
        "outcome": outcome,
        "promised_date": promised_date,
        # The ledger rules put the deadline at the end of the promised day (teams here: UTC).
        "deadline": datetime.combine(promised_date + timedelta(days=1), datetime.min.time(), UTC)
        if promised_date
        else None,
        "promised_at": made,
        "settled_at": settled if settled is not None else delivered,
        "delivered_at": delivered,
        "slip_days": slip,
        "small": small,
        "excluded": excluded,
        "scope": scope,
        "opened_at": opened or made,
        "first_response_seconds": None if response_hours is None else response_hours * 3600,
    }


# fmt: off
LEDGER = [
    row("H1", "early", (4, 15), made=at(4, 1, 12), delivered=at(4, 11, 12)),
    row("H2", "on_time", (5, 10), made=at(4, 20), delivered=at(5, 10, 12)),
    row("C1", "on_time", (6, 5), made=at(5, 20, 12), delivered=at(6, 5, 12), small=True,
        scope="v1"),
    row("C2", "late", (6, 4), made=at(5, 29, 12), delivered=at(6, 7, 12), slip=3, small=True,
        scope="v1"),
    row("C3", "missed", (6, 9), made=at(5, 30), settled=at(6, 10), slip=17, scope="v1"),
    row("C4", "late", (6, 5), made=at(6, 1), delivered=at(6, 11), slip=6),
    row("C5", "dropped", (6, 25), made=at(6, 2), settled=at(6, 12, 12)),
    row("C6", "early", (6, 24), made=at(6, 3), delivered=at(6, 14), scope="v2"),
    row("C7", "early", (6, 18), made=at(6, 4), delivered=at(6, 17, 12)),
    row("C8", "descoped", (6, 20), made=at(6, 5), settled=at(6, 15), small=True),
    row("C9", "pending", (6, 28), made=at(6, 10), scope="v2"),
    row("C10", "missed", (6, 14), made=at(6, 1), settled=at(6, 15), excluded=True),
    # Still pending in the ledger, but its deadline (06-13 00:00) has passed: a miss.
    row("C11", "pending", (6, 12), made=at(6, 2)),
    row("C12", "pending", (7, 20), made=at(6, 20), scope="v2"),
    # Deliveries with no promise: counted as unpromised deliveries in their month only.
    row("U1", "unpromised", delivered=at(6, 3), opened=at(6, 1), response_hours=0.5),
    row("U2", "unpromised", delivered=at(6, 20), opened=at(6, 2), response_hours=2.0),
    row("U3", "unpromised", delivered=at(6, 21), excluded=True, opened=at(6, 2),
        response_hours=3.0),
    row("U4", "unpromised", delivered=at(5, 21), opened=at(5, 2), response_hours=100.0),
    row("L1", "linked", delivered=at(6, 21), opened=at(6, 20), response_hours=26.0),
    # Another team of the same client: never part of platform's figures.
    row("W1", "missed", (6, 10), made=at(6, 1), settled=at(6, 11), team="web"),
    row("W2", "early", (6, 10), made=at(6, 1), delivered=at(6, 2), team="web"),
]
# fmt: on
AS_OF = at(6, 26)


def insert_ledger(database_url: str, rows: list[dict] = LEDGER) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for r in rows:
            item_id = conn.execute(
                insert(Item.__table__)
                .values(
                    key=f"github:acme/{r['team']}#{r['key']}",
                    source="github",
                    source_key=f"acme/{r['team']}",
                    team=r["team"],
                    client=r["client"],
                    status="open",
                    title=r["key"],
                    scope=r["scope"],
                    opened_at=r["opened_at"],
                    first_response_seconds=r["first_response_seconds"],
                    links=[],
                    updated_at=at(7, 1),
                )
                .returning(Item.__table__.c.id)
            ).scalar_one()
            conn.execute(
                insert(Commitment.__table__).values(
                    item_id=item_id,
                    team=r["team"],
                    client=r["client"],
                    promised_date=r["promised_date"],
                    first_promised=r["promised_date"],
                    latest_promised=r["promised_date"],
                    promised_at=r["promised_at"],
                    deadline=r["deadline"],
                    outcome=r["outcome"],
                    settled_at=r["settled_at"],
                    delivered_at=r["delivered_at"],
                    settle_at=settle_instant(
                        outcome=r["outcome"],
                        promised_date=r["promised_date"],
                        deadline=r["deadline"],
                        settled_at=r["settled_at"],
                        delivered_at=r["delivered_at"],
                    ),
                    slip_days=r["slip_days"],
                    repromise_count=0,
                    small=r["small"],
                    excluded=r["excluded"],
                    updated_at=at(7, 1),
                )
            )
    engine.dispose()


def deliver_late(engine, key: str, when: datetime, slip: int) -> None:
    """Item `key` delivered late at `when`, its row rewritten as ledger.store writes it."""
    table = Commitment.__table__
    with engine.begin() as conn:
        found = conn.execute(
            table.select().join(Item.__table__).where(Item.__table__.c.title == key)
        ).one()
        settle_at = settle_instant(
            outcome="late",
            promised_date=found.promised_date,
            deadline=found.deadline,
            settled_at=when,
            delivered_at=when,
        )
        conn.execute(
            update(table)
            .where(table.c.item_id == found.item_id)
            .values(
                outcome="late",
                settled_at=when,
                delivered_at=when,
                slip_days=slip,
                settle_at=settle_at,
            )
        )
