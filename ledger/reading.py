"""How every figure reads the ledger: one owner's rows, which rows are promises, the period
rule and the read-as-of rule. The one home of each; docs/metrics.md, "Reading the ledger".

- **Promises.** Rows with a promised date and a promise outcome (`ledger.outcomes.PROMISED`);
  unpromised and linked rows are deliveries without a promise.
- **The period rule.** A commitment counts in the period of its judged promised date (both ends
  included); a period ends at the midnight after its last day in the owner's timezone. Streaks
  and the trust score go by settlement time (`commitments.settle_at`) instead.
- **The read-as-of rule.** A pending row whose deadline has passed at `as_of` is read as missed,
  settled at its deadline, whether or not the scheduler has stored it as missed yet
  (`ledger.store.settle_overdue` only stores what the clock already decided). For a pending row
  `settle_at` is its deadline (ledger.tables.settle_instant), so "overdue" is a plain
  comparison on the settlement-order index.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import DateTime, and_, case, literal

from ledger.codec import utc
from ledger.outcomes import PROMISED, Outcome, values
from ledger.tables import Commitment, Item

C = Commitment.__table__
I = Item.__table__  # noqa: E741  (the table of items, as in SQL)

_DAY = timedelta(days=1)
# Periods are shifted by months and days (the monthly series, the end-of-day deadline); dates
# near Python's year 1 or 9999 would overflow, and none of them is a real promise anyway.
FIRST_YEAR, LAST_YEAR = 1900, 9000


# --- the owner's rows --------------------------------------------------------------------------


def owner_filter(*, teams: Sequence[str] | None = None, client: str | None = None):
    """WHERE clause for one team's or one client's rows; each matches a (x, promised_date) index."""
    if (teams is None) == (client is None):
        raise ValueError("pass teams or client, not both")
    if client is not None:
        return C.c.client == client
    return C.c.team == teams[0] if len(teams) == 1 else C.c.team.in_(list(teams))


def outcome_in(group: frozenset[Outcome]):
    """The SQL predicate of an outcome group (ledger.outcomes) on the stored outcome."""
    return C.c.outcome.in_(values(group))


def promises(where):
    """The rows of the figures: promises (not unpromised or linked wins) matching `where`."""
    return and_(where, C.c.promised_date.is_not(None), outcome_in(PROMISED))


# --- the period rule ---------------------------------------------------------------------------


def supported(day: date) -> bool:
    return FIRST_YEAR <= day.year <= LAST_YEAR


def promised_in(period_from: date, period_to: date):
    """The commitments of a period: promised for a day within it, both ends included."""
    return C.c.promised_date.between(period_from, period_to)


def start_of_day(day: date, tz: tzinfo = UTC) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def end_of_day(day: date, tz: tzinfo = UTC) -> datetime:
    """The instant a day ends (the next midnight) in `tz`: where a period ends.

    Pass the owner's timezone: the ledger rules put a miss's deadline at the team's midnight, and
    a miss on the period's last day must settle within the period.
    """
    return datetime.combine(day + _DAY, time.min, tzinfo=tz)


def month_starts(last: date, months: int) -> list[date]:
    """First days of the `months` calendar months ending with `last`'s month, oldest first."""
    index = last.year * 12 + last.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - months + 1, index + 1)]


def month_end(day: date) -> date:
    """The last day of `day`'s month."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1) - _DAY


# --- the read-as-of rule -----------------------------------------------------------------------


def at(value: datetime):
    """A moment as a SQL literal (stored times are UTC)."""
    return literal(utc(value), DateTime(timezone=True))


def overdue(as_of: datetime):
    """A pending row whose deadline has passed at `as_of`: read as a miss settled then."""
    return and_(C.c.outcome == Outcome.PENDING.value, C.c.settle_at <= at(as_of))


def read_outcome(as_of: datetime):
    """The outcome as the figures read it at `as_of` (an overdue pending row is `missed`)."""
    return case((overdue(as_of), Outcome.MISSED.value), else_=C.c.outcome)


def read_settled_at(as_of: datetime):
    """When the row was settled as the figures read it at `as_of` (an overdue pending row: its
    deadline, which is its settle_at)."""
    return case((overdue(as_of), C.c.settle_at), else_=C.c.settled_at)
