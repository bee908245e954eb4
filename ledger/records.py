"""The record of a team or client for a period, as the API, the CLI and the badge answer it.

Reads one owner's rows (ledger.queries) and hands them to the pure figures (ledger.metrics).
`as_of` is the earlier of now and the end of the period: a past period's record is then
reproducible (its trust score is the one it had when the period ended), and the current
period's is up to the moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import Connection

from ledger import queries
from ledger.metrics import end_of_day, track_record
from ledger.outcomes import KEPT, SETTLED
from ledger.trust import DEFAULT_HALF_LIFE_DAYS

BADGE_DAYS = 90


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
    history = queries.load_history(conn, as_of=as_of, **owner)
    figures = track_record(
        history,
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
    kept = due = 0
    for c in queries.load_history(conn, teams=[team], as_of=now, promised_between=(since, today)):
        if c.excluded or c.outcome not in SETTLED:
            continue
        due += 1
        kept += c.outcome in KEPT
    return kept / due if due else None
