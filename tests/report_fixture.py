"""The ledger behind the report tests: tests/ledger_fixture.py's hand-made ledger (every
outcome: early, on time, late, missed, an overdue pending read as missed, dropped, descoped,
pending, excluded, unpromised and linked wins, another team) plus what only a report tells:
a re-promise, a reopening, an exclusion's reason, and an item title written to break markup.

Client `acme` (tests/conftest.py CONFIG_TOML: Europe/Berlin; teams platform in UTC and web in
Europe/Berlin), reported for June 2024.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import create_engine, insert, select, update

from ledger.reading import end_of_day
from ledger.tables import Commitment, Exclusion, Item, ItemEvent
from tests.ledger_fixture import LEDGER, at, insert_ledger

MONTH = "2024-06"
NOW = datetime(2024, 7, 3, 9, tzinfo=UTC)
HOSTILE_TITLE = "Drop <b>old</b> API | ping @ghost"  # C5's title
REASON = "blocked on client API keys"
# C4 was first promised for 5 Jun (the promise it is judged against) and re-promised for 9 Jun.
REPROMISED = ("C4", date(2024, 6, 5), date(2024, 6, 9))


def build(database_url: str) -> None:
    insert_ledger(database_url)
    engine = create_engine(database_url)
    ids = {}
    with engine.begin() as conn:
        ids = dict(conn.execute(select(Item.title, Item.id)).all())
        key, first, latest = REPROMISED
        conn.execute(
            update(Commitment)
            .where(Commitment.item_id == ids[key])
            .values(first_promised=first, latest_promised=latest, repromise_count=1)
        )
        conn.execute(
            insert(ItemEvent).values(
                item_id=ids["C2"], event_id="reopen-1", at=at(6, 6), kind="reopened", data={}
            )
        )
        conn.execute(
            insert(Exclusion).values(
                item_id=ids["C10"], reason=REASON, excluded_by="dana", excluded_at=at(6, 16)
            )
        )
        conn.execute(update(Item).where(Item.id == ids["C5"]).values(title=HOSTILE_TITLE))
    engine.dispose()


def title(key: str) -> str:
    return HOSTILE_TITLE if key == "C5" else key


def expected_outcomes(first: date, last: date, *, deadline_passed_by: datetime) -> dict:
    """{title: outcome as the figures read it} of the client's promises due in [first, last],
    from the fixture's rows themselves: a pending row whose deadline (the end of its day, in
    UTC for these rows) has passed is a miss. Excluded rows are left out."""
    found = {}
    for r in LEDGER:
        day = r["promised_date"]
        if day is None or r["excluded"] or not first <= day <= last:
            continue
        outcome = r["outcome"]
        if outcome == "pending" and end_of_day(day, UTC) <= deadline_passed_by:
            outcome = "missed"
        found[title(r["key"])] = outcome
    return found
