"""The record of a team or client for a period, and its headline words: what the API, the CLI and
the badge answer, from the same figures in the same words. docs/metrics.md.

The figures are aggregated in the database (`ledger.sql_figures`: a few statements over the
owner's index ranges, a few dozen rows back). `as_of` is the earlier of now and the end of the
period: a past period's record is then reproducible (its trust score is the one it had when the
period ended), and the current period's is up to the moment.

`headline` is the one home of the words: "75% on time · 3 of 4 kept" when something was due,
and otherwise what will count and when ("nothing due yet · 2 promises are pending, first due
15 Oct", "nothing due yet · next due 15 Oct", "no promises yet"), never a bare "n/a". The
record carries them as `summary`, the CLI prints them under its title, and the badge shows its
90-day window (the record of the last 90 days, today included) in the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, case, false, null

from ledger import sql_figures
from ledger.codec import utc
from ledger.outcomes import COUNT_FIELD, KEPT
from ledger.reading import (
    C,
    end_of_day,
    month_end,
    month_starts,
    owner_filter,
    promised_in,
    start_of_day,
)
from ledger.sql_dialect import dialect_of
from ledger.trust import DEFAULT_HALF_LIFE_DAYS, beta_reputation

BADGE_DAYS = 90
_DAY = timedelta(days=1)


# --- the words ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    """A record in words: `words` in full, `short` for a badge's value; and the on-time rate
    they state (None when nothing was due)."""

    words: str
    short: str
    rate: float | None = None


def day_words(day: date, today: date) -> str:
    """A day as every surface writes it: '15 Oct', with the year when it is not this year's."""
    return f"{day.day} {day:%b}" if day.year == today.year else f"{day.day} {day:%b %Y}"


def headline(
    counted: dict[str, int], *, next_due: date | None, promised: bool, today: date
) -> Headline:
    """The record's words from its counts: the on-time rate and how many of the due promises
    were kept; when nothing is due yet, what will count and when.

    `next_due` is the next promised date ahead (None once the period is over), `promised`
    whether the owner has made any promise at all, `today` the as_of day (for the year).
    """
    due = counted["commitments_due"]
    if due:
        kept = sum(counted[COUNT_FIELD[o]] for o in KEPT)
        rate = f"{kept / due:.0%}"
        return Headline(f"{rate} on time · {kept} of {due} kept", rate, kept / due)
    pending = counted["pending"]
    ahead = f"next due {day_words(next_due, today)}" if next_due else None
    if pending:
        first = f", first due {day_words(next_due, today)}" if next_due else ""
        plural = "promise is" if pending == 1 else "promises are"
        return Headline(
            f"nothing due yet · {pending} {plural} pending{first}", ahead or "none due yet"
        )
    if ahead:
        return Headline(f"nothing due yet · {ahead}", ahead)
    if not promised:
        return Headline("no promises yet", "no promises yet")
    return Headline("nothing due in this period", "none due")


# --- the record --------------------------------------------------------------------------------


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
    """The record object: `team` or `client`, `from`, `to`, `as_of`, `summary`, then the
    figures (`figures`).

    `teams` are the owner's teams (one for a team record, the client's for a client record);
    a client's rows are read through the client index, its teams' items for response times.
    """
    now = now or datetime.now(UTC)
    as_of = min(now, end_of_day(period_to, tz))
    found, words = figures(
        conn,
        teams=teams,
        client=client,
        period_from=period_from,
        period_to=period_to,
        as_of=as_of,
        tz=tz,
        half_life_days=half_life_days,
    )
    head = {"client": client} if client is not None else {"team": teams[0]}
    return {
        **head,
        "from": period_from.isoformat(),
        "to": period_to.isoformat(),
        "as_of": as_of.astimezone(UTC).isoformat(),
        "summary": words.words,
        **found,
        "next_due": found["next_due"].isoformat() if found["next_due"] else None,
    }


def figures(
    conn: Connection,
    *,
    teams: Sequence[str],
    client: str | None = None,
    period_from: date,
    period_to: date,
    as_of: datetime,
    tz: tzinfo = UTC,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    months: int = 12,
) -> tuple[dict, Headline]:
    """(every figure of docs/metrics.md for the owner and period as of `as_of`, its headline).

    Five small statements: one GROUP BY for the counts of the period and of each month of the
    series (with the first promise and first kept delivery), the period's percentiles, the
    settlement pass (streaks and trust evidence), the next promised date ahead, the unpromised
    deliveries and the first-response median.
    """
    if period_from > period_to:
        raise ValueError("period_from is after period_to")
    owner = C.c.client if client is not None else C.c.team
    where = owner_filter(teams=None if client else [teams[0]], client=client)
    start, end = start_of_day(period_from, tz), end_of_day(period_to, tz)
    starts = month_starts(period_to, months)
    in_series = promised_in(starts[0], month_end(period_to)) if starts else false()
    groups = {"month": case((in_series, dialect_of(conn).month(C.c.promised_date)), else_=null())}
    rows, period, small_wins = _counted(
        conn, owner, where, period_from, period_to, as_of, end, groups
    )
    pcts = sql_figures.percentiles(
        conn, owner=owner, where=where & promised_in(period_from, period_to), groups={}
    )
    pct = pcts[0] if pcts else {}
    settled = sql_figures.settlement_pass(
        conn, owner=owner, where=where, as_of=as_of, until=end, half_life_days=half_life_days
    ).get(client or teams[0], sql_figures.NOTHING_SETTLED)
    first_promise = min((utc(r["first_promise"]) for r in rows if r["first_promise"]), default=None)
    first_kept = min((utc(r["first_kept"]) for r in rows if r["first_kept"]), default=None)
    series = []
    for month_start in starts:
        month = f"{month_start:%Y-%m}"
        month_counts = _total(r for r in rows if r["month"] == month)
        series.append({"month": month, **month_counts, **sql_figures.ratios(month_counts)})
    ahead = _next_due(conn, where, period_from, as_of, end, tz)
    found = {
        **period,
        **sql_figures.ratios(period),
        "slip_days_median": _float(pct.get("slip_days_median")),
        "slip_days_p90": _float(pct.get("slip_days_p90")),
        "streak_current": settled.current,
        "streak_longest": settled.longest,
        "small_wins": small_wins,
        "unpromised_deliveries": sql_figures.unpromised_deliveries(
            conn, where=where, start=start, end=end
        ),
        "first_response_hours_median": sql_figures.first_response_median(
            conn, teams=teams, start=start, end=end
        ),
        "lead_time_days_median": _float(pct.get("lead_time_days_median")),
        "first_win_days": _days(first_promise, first_kept),
        "trust_score": beta_reputation(settled.w_kept, settled.w_broken).as_dict(),
        "months": series,
        "next_due": ahead,
    }
    words = headline(period, next_due=ahead, promised=_any_promise(rows), today=_today(as_of, tz))
    return found, words


def badge(conn: Connection, *, team: str, now: datetime | None = None, tz: tzinfo = UTC):
    """The team's record of the last `BADGE_DAYS` days (today included) in words: only the
    counts it needs, by the same statements and words as the record of that period."""
    now = now or datetime.now(UTC)
    today = now.astimezone(tz).date()
    since = today - timedelta(days=BADGE_DAYS - 1)
    where = owner_filter(teams=[team])
    end = end_of_day(today, tz)
    rows, period, _ = _counted(conn, C.c.team, where, since, today, now, end, {})
    ahead = _next_due(conn, where, since, now, end, tz)
    return headline(period, next_due=ahead, promised=_any_promise(rows), today=today)


# --- helpers -----------------------------------------------------------------------------------


def _counted(conn, owner, where, period_from, period_to, as_of, end, groups):
    """(every counts row of the owner, the period's counts, its small wins): one statement."""
    in_period = {"in_period": case((promised_in(period_from, period_to), 1), else_=0)}
    rows = sql_figures.counts(
        conn, owner=owner, where=where, groups={**groups, **in_period}, as_of=as_of, until=end
    )
    period = [r for r in rows if r["in_period"] == 1]
    return rows, _total(period), sum(int(r["small_wins"]) for r in period)


def _total(rows) -> dict[str, int]:
    """The counts of several `counts` rows added up (zeros for none)."""
    total = sql_figures.counts_of(None)
    for r in rows:
        for field, n in sql_figures.counts_of(r).items():
            total[field] += n
    return total


def _any_promise(rows) -> bool:
    """Whether the owner has any promise that was not excluded."""
    return any(sum(sql_figures.counts_of(r)[f] for f in COUNT_FIELD.values()) for r in rows)


def _next_due(conn, where, period_from: date, as_of: datetime, end: datetime, tz) -> date | None:
    """The next promised date ahead while the period runs: on or after the later of its start
    and the as_of day. None once it has ended: nothing more will count in it."""
    if as_of >= end:
        return None
    on_or_after = max(period_from, _today(as_of, tz))
    return sql_figures.next_due(conn, where=where, on_or_after=on_or_after)


def _today(as_of: datetime, tz) -> date:
    return as_of.astimezone(tz).date()


def _days(first: datetime | None, then: datetime | None) -> float | None:
    return None if first is None or then is None else (then - first) / _DAY


def _float(value) -> float | None:
    return None if value is None else float(value)
