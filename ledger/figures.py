"""Records and monthly figures from the database aggregates of `ledger.aggregates`.

The rows SQL hands back are few (one per owner and bucket); turning them into the record uses
the same pure helpers as `ledger.metrics.track_record` (`ratios`, `beta_reputation`,
`month_starts`), so the two paths differ only in who does the per-row work. A test holds them
equal on a hand-made ledger on both engines (tests/test_queries.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import case, null, text, true

from ledger import aggregates
from ledger.metrics import COUNT_FIELDS, end_of_day, median, month_starts, ratios
from ledger.queries import C, owner_filter, utc
from ledger.trust import DEFAULT_HALF_LIFE_DAYS, beta_reputation

_DAY = timedelta(days=1)
RECOMPUTE_WORK_MEM = "64MB"
_OUTCOME_FIELDS = COUNT_FIELDS[1:]  # all but commitments_due, which is derived
_SETTLED_FIELDS = ("delivered_early", "delivered_on_time", "delivered_late", "missed", "dropped")
_EXTRA_FIELDS = ("small_wins", "slip_days_median", "slip_days_p90")


def counts_of(row) -> dict[str, int]:
    """The record's counts from an aggregate row (or zeros for a bucket with no rows)."""
    counts = {f: int(getattr(row, f) or 0) if row is not None else 0 for f in _OUTCOME_FIELDS}
    return {"commitments_due": sum(counts[f] for f in _SETTLED_FIELDS), **counts}


def _history(rows) -> tuple[float, float, datetime | None, datetime | None]:
    """An owner's (weighted kept, weighted broken, first promise, first kept) over its buckets."""
    kept = sum(r.w_kept or 0.0 for r in rows)
    broken = sum(r.w_broken or 0.0 for r in rows)
    promises = [utc(r.first_promise) for r in rows if r.first_promise is not None]
    wins = [utc(r.first_kept) for r in rows if r.first_kept is not None]
    return kept, broken, min(promises, default=None), min(wins, default=None)


def _first_win(first_promise, first_kept) -> float | None:
    if first_promise is None or first_kept is None:
        return None
    return (first_kept - first_promise) / _DAY


def _float(value) -> float | None:
    return None if value is None else float(value)


def record_sql(
    conn,
    *,
    period_from: date,
    period_to: date,
    as_of: datetime,
    team: str | None = None,
    client: str | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    unpromised_deliveries: int = 0,
    first_response_hours: Sequence[float] = (),
    months: int = 12,
    tz: tzinfo = UTC,
) -> dict:
    """The record of `ledger.metrics.track_record`, aggregated in the database."""
    if period_from > period_to:
        raise ValueError("period_from is after period_to")
    owner = C.c.client if client is not None else C.c.team
    where = owner_filter(teams=None if client else [team], client=client)
    end = end_of_day(period_to, tz)
    in_period = C.c.promised_date.between(period_from, period_to)
    common = {"owner": owner, "as_of": as_of, "until": end, "half_life_days": half_life_days}
    rows = aggregates.bucket_aggregates(
        conn, where=where, bucket=case((in_period, "period"), else_=null()), **common
    )
    period = next((r for r in rows if r.bucket == "period"), None)
    kept, broken, first_promise, first_kept = _history(rows)
    current, longest = aggregates.streaks(
        conn, owner=owner, where=where, as_of=as_of, until=end
    ).get(client or team, (0, 0))
    counts = counts_of(period)
    return {
        **counts,
        **ratios(counts),
        "slip_days_median": _float(period.slip_days_median if period else None),
        "slip_days_p90": _float(period.slip_days_p90 if period else None),
        "streak_current": current,
        "streak_longest": longest,
        "small_wins": int(period.small_wins) if period else 0,
        "unpromised_deliveries": unpromised_deliveries,
        "first_response_hours_median": median(first_response_hours),
        "lead_time_days_median": _float(period.lead_time_days_median if period else None),
        "first_win_days": _first_win(first_promise, first_kept),
        "trust_score": beta_reputation(kept, broken).as_dict(),
        "months": monthly_series_sql(
            conn, where=where, owner=owner, last=period_to, months=months, as_of=as_of
        ).get(client or team, _empty_series(period_to, months)),
    }


def monthly_series_sql(conn, *, where, owner, last: date, months: int, as_of: datetime) -> dict:
    """{owner: months series of track_record}, for the `months` months ending with `last`'s."""
    starts = month_starts(last, months)
    if not starts:
        return {}
    d = aggregates.dialect_of(conn)
    window = C.c.promised_date.between(starts[0], _month_end(last))
    rows = aggregates.bucket_aggregates(
        conn,
        owner=owner,
        where=where & window,
        bucket=d.month(C.c.promised_date),
        as_of=as_of,
        until=as_of,
        half_life_days=DEFAULT_HALF_LIFE_DAYS,
    )
    by_owner: dict[str, dict[str, object]] = {}
    for r in rows:
        by_owner.setdefault(r.owner, {})[r.bucket] = r
    series = {}
    for name, buckets in by_owner.items():
        series[name] = []
        for start in starts:
            counts = counts_of(buckets.get(f"{start:%Y-%m}"))
            series[name].append({"month": f"{start:%Y-%m}", **counts, **ratios(counts)})
    return series


def _month_end(day: date) -> date:
    """The last day of `day`'s month, so the window covers the whole last month."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1) - _DAY


def _empty_series(last: date, months: int) -> list[dict]:
    counts = counts_of(None)
    return [{"month": f"{s:%Y-%m}", **counts, **ratios(counts)} for s in month_starts(last, months)]


def recompute(
    conn,
    *,
    as_of: datetime,
    teams: Sequence[str] | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> dict[str, dict]:
    """Every team's figures (or the named teams'), all months of the history, as of `as_of`.

    {team: {"months": {"YYYY-MM": counts, ratios, slip median/p90, small wins},
    "streak_current", "streak_longest", "first_win_days", "trust_score"}}. Two statements: the
    GROUP BY team, month pass (sums, then slip percentiles over the late rows) and the streaks'
    window pass. The lead-time median is the record's (over its period), not a monthly figure.
    """
    d = aggregates.dialect_of(conn)
    where = true() if teams is None else owner_filter(teams=list(teams))
    common = {"owner": C.c.team, "where": where, "as_of": as_of}
    if d.pg and teams is None:
        # At PostgreSQL's default 4 MB the month GROUP BY and the streaks' sort of a million
        # rows spill to disk (external merge); 64 MB keeps them in memory. SET LOCAL: this
        # transaction only (docs/benchmarks.md).
        conn.execute(text(f"SET LOCAL work_mem = '{RECOMPUTE_WORK_MEM}'"))
    rows = aggregates.bucket_aggregates(
        conn,
        bucket=d.month(C.c.promised_date),
        until=as_of,
        half_life_days=half_life_days,
        lead_time=False,
        **common,
    )
    runs = aggregates.streaks(conn, until=as_of, **common)
    by_team: dict[str, list] = {}
    for r in rows:
        by_team.setdefault(r.owner, []).append(r)
    result = {}
    for team, team_rows in by_team.items():
        kept, broken, first_promise, first_kept = _history(team_rows)
        current, longest = runs.get(team, (0, 0))
        result[team] = {
            "months": {r.bucket: month_figures(r) for r in sorted(team_rows, key=_bucket)},
            "streak_current": current,
            "streak_longest": longest,
            "first_win_days": _first_win(first_promise, first_kept),
            "trust_score": beta_reputation(kept, broken).as_dict(),
            "evidence": {"kept": kept, "broken": broken},
        }
    return result


def month_figures(row) -> dict:
    counts = counts_of(row)
    extra = {f: _float(getattr(row, f)) for f in _EXTRA_FIELDS}
    extra["small_wins"] = int(row.small_wins or 0)
    return {**counts, **ratios(counts), **extra}


def _bucket(row) -> str:
    return row.bucket
