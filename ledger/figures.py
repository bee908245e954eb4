"""Records and monthly figures from the database aggregates of `ledger.aggregates`.

The rows SQL hands back are few (one per owner and bucket); turning them into the record uses
the same pure helpers as `ledger.metrics.track_record` (`ratios`, `beta_reputation`,
`month_starts`), so the two paths differ only in who does the per-row work. A test holds them
equal on a hand-made ledger on both engines (tests/test_queries.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from types import SimpleNamespace

from sqlalchemy import case, false, null, text, true

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


def _total(rows, fields=(*_OUTCOME_FIELDS, "small_wins")) -> SimpleNamespace | None:
    """The sums of several aggregate rows (of one owner), or None when there are none."""
    if not rows:
        return None
    return SimpleNamespace(**{f: sum(getattr(r, f) or 0 for r in rows) for f in fields})


def _firsts(rows) -> tuple[datetime | None, datetime | None]:
    """An owner's (first promise, first kept delivery) over its buckets."""
    promises = [utc(r.first_promise) for r in rows if r.first_promise is not None]
    wins = [utc(r.first_kept) for r in rows if r.first_kept is not None]
    return min(promises, default=None), min(wins, default=None)


_NOTHING_SETTLED = aggregates.Settled(0, 0, 0.0, 0.0)


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
    """The record of `ledger.metrics.track_record`, aggregated in the database.

    Three statements over the owner's index ranges: one GROUP BY for the counts of the period
    and of each month of the series (with the first promise and first kept delivery), one for
    the period's percentiles, and the settlement pass (streaks and trust evidence).
    """
    if period_from > period_to:
        raise ValueError("period_from is after period_to")
    d = aggregates.dialect_of(conn)
    owner = C.c.client if client is not None else C.c.team
    where = owner_filter(teams=None if client else [team], client=client)
    end = end_of_day(period_to, tz)
    in_period = C.c.promised_date.between(period_from, period_to)
    starts = month_starts(period_to, months)
    in_series = C.c.promised_date.between(starts[0], _month_end(period_to)) if starts else false()
    groups = {
        "month": case((in_series, d.month(C.c.promised_date)), else_=null()),
        "in_period": case((in_period, 1), else_=0),
    }
    rows = [
        SimpleNamespace(**r)
        for r in aggregates.sums(
            conn,
            owner=owner,
            where=where,
            groups=groups,
            as_of=as_of,
            until=end,
        )
    ]
    period = _total([r for r in rows if r.in_period == 1])
    pcts = aggregates.percentiles(conn, owner=owner, where=where & in_period, groups={})
    pct = pcts[0] if pcts else {}
    first_promise, first_kept = _firsts(rows)
    settled = aggregates.settlement_pass(
        conn, owner=owner, where=where, as_of=as_of, until=end, half_life_days=half_life_days
    ).get(client or team, _NOTHING_SETTLED)
    counts = counts_of(period)
    series = []
    for start in starts:
        month = f"{start:%Y-%m}"
        month_counts = counts_of(_total([r for r in rows if r.month == month]))
        series.append({"month": month, **month_counts, **ratios(month_counts)})
    return {
        **counts,
        **ratios(counts),
        "slip_days_median": _float(pct.get("slip_days_median")),
        "slip_days_p90": _float(pct.get("slip_days_p90")),
        "streak_current": settled.current,
        "streak_longest": settled.longest,
        "small_wins": int(period.small_wins) if period else 0,
        "unpromised_deliveries": unpromised_deliveries,
        "first_response_hours_median": median(first_response_hours),
        "lead_time_days_median": _float(pct.get("lead_time_days_median")),
        "first_win_days": _first_win(first_promise, first_kept),
        "trust_score": beta_reputation(settled.w_kept, settled.w_broken).as_dict(),
        "months": series,
    }


def _month_end(day: date) -> date:
    """The last day of `day`'s month, so the window covers the whole last month."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1) - _DAY


def recompute(
    conn,
    *,
    as_of: datetime,
    teams: Sequence[str] | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> dict[str, dict]:
    """Every team's figures (or the named teams'), all months of the history, as of `as_of`.

    {team: {"months": {"YYYY-MM": counts, ratios, slip median/p90, small wins},
    "streak_current", "streak_longest", "first_win_days", "trust_score", "evidence"}}.
    Three statements: the GROUP BY team, month pass (counts), the slip percentiles over the late
    rows, and the settlement-order pass (streaks and trust evidence, in index order, no sort).
    The lead-time median is the record's (over its period), not a monthly figure.
    """
    d = aggregates.dialect_of(conn)
    where = true() if teams is None else owner_filter(teams=list(teams))
    common = {"owner": C.c.team, "where": where, "as_of": as_of}
    if d.pg and teams is None:
        # At PostgreSQL's default 4 MB the percentiles' sort of the late rows spills to disk
        # (external merge); 64 MB keeps it in memory. SET LOCAL: this transaction only.
        conn.execute(text(f"SET LOCAL work_mem = '{RECOMPUTE_WORK_MEM}'"))
    rows = aggregates.bucket_aggregates(
        conn,
        bucket=d.month_group(C.c.promised_date),
        until=as_of,
        lead_time=False,
        full_scan=teams is None,
        **common,
    )
    runs = aggregates.settlement_pass(conn, until=as_of, half_life_days=half_life_days, **common)
    by_team: dict[str, list] = {}
    for r in rows:
        by_team.setdefault(r.owner, []).append(r)
    result = {}
    for team, team_rows in by_team.items():
        first_promise, first_kept = _firsts(team_rows)
        settled = runs.get(team, _NOTHING_SETTLED)
        result[team] = {
            "months": {r.bucket: month_figures(r) for r in sorted(team_rows, key=_bucket)},
            "streak_current": settled.current,
            "streak_longest": settled.longest,
            "first_win_days": _first_win(first_promise, first_kept),
            "trust_score": beta_reputation(settled.w_kept, settled.w_broken).as_dict(),
            "evidence": {"kept": settled.w_kept, "broken": settled.w_broken},
        }
    return result


def month_figures(row) -> dict:
    counts = counts_of(row)
    extra = {f: _float(getattr(row, f)) for f in _EXTRA_FIELDS}
    extra["small_wins"] = int(row.small_wins or 0)
    return {**counts, **ratios(counts), **extra}


def _bucket(row) -> str:
    return row.bucket
