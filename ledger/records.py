"""The record of a team or client for a period, as the API, the CLI and the badge answer it.

The figures are aggregated in the database (`ledger.figures.record_sql`: a few statements over
the owner's index ranges, a few dozen rows back); the pure `ledger.metrics.track_record` over
`ledger.queries.load_history` is the reference they are tested equal to (tests/test_queries.py).
`as_of` is the earlier of now and the end of the period: a past period's record is then
reproducible (its trust score is the one it had when the period ended), and the current
period's is up to the moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, false, func, or_, select

from ledger import aggregates, queries
from ledger.figures import record_sql
from ledger.metrics import end_of_day
from ledger.queries import C
from ledger.trust import DEFAULT_HALF_LIFE_DAYS

BADGE_DAYS = 90
# Periods are shifted by months and days (the monthly series, the end-of-day deadline); dates
# near Python's year 1 or 9999 would overflow, and none of them is a real promise anyway.
FIRST_YEAR, LAST_YEAR = 1900, 9000


def supported(day: date) -> bool:
    return FIRST_YEAR <= day.year <= LAST_YEAR


def team_record(conn: Connection, team, *, period_from: date, period_to: date) -> dict:
    """One team's record with its own settings (`team` is its configuration: a TeamModel)."""
    return record(
        conn,
        teams=[team.name],
        period_from=period_from,
        period_to=period_to,
        tz=ZoneInfo(team.timezone),
        half_life_days=team.trust_half_life_days,
    )


def record(
    conn: Connection,
    *,
    teams: Sequence[str],
    client: str | None = None,
    period_from: date,
    period_to: date,
    now: datetime | None = None,
    tz: tzinfo = UTC,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> dict:
    """The record object: `team` or `client`, `from`, `to`, `as_of`, then the figures.

    `teams` are the owner's teams (one for a team record, the client's for a client record);
    a client's rows are read through the client index, its teams' items for response times.
    """
    now = now or datetime.now(UTC)
    start, end = queries.start_of_day(period_from, tz), end_of_day(period_to, tz)
    as_of = min(now, end)
    owner = {"client": client} if client is not None else {"teams": teams}
    figures = record_sql(
        conn,
        team=None if client is not None else teams[0],
        client=client,
        period_from=period_from,
        period_to=period_to,
        as_of=as_of,
        half_life_days=half_life_days,
        unpromised_deliveries=queries.unpromised_deliveries(conn, start=start, end=end, **owner),
        first_response_hours=queries.first_response_hours(conn, teams=teams, start=start, end=end),
        tz=tz,
    )
    head = {"client": client} if client is not None else {"team": teams[0]}
    return {
        **head,
        "from": period_from.isoformat(),
        "to": period_to.isoformat(),
        "as_of": as_of.astimezone(UTC).isoformat(),
        **figures,
    }


def badge_rate(
    conn: Connection, *, team: str, now: datetime | None = None, tz: tzinfo = UTC
) -> float | None:
    """On-time rate of the commitments promised in the last 90 days (today included); None
    when nothing was due. Counts only: the badge needs no history."""
    now = now or datetime.now(UTC)
    today = now.astimezone(tz).date()
    since = today - timedelta(days=BADGE_DAYS - 1)
    late = aggregates.overdue(now)  # an overdue pending row is a miss
    stmt = select(
        func.count().filter(C.c.outcome.in_(aggregates.KEPT)),
        func.count().filter(or_(C.c.outcome.in_(aggregates.KEPT + aggregates.BROKEN), late)),
    ).where(
        aggregates.promises(C.c.team == team),
        C.c.promised_date.between(since, today),
        C.c.excluded == false(),
    )
    kept, due = conn.execute(stmt).one()
    return kept / due if due else None
