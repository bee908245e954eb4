"""The figures of docs/metrics.md in plain Python, row by row: the reference the service's SQL
path (ledger.record, ledger.sql_figures) is held equal to, on both engines, in
tests/test_queries.py; and the worked example of docs/metrics.md, checked number by number in
tests/test_metrics.py.

Written for clarity, not speed, and as independent of the SQL path as the definitions allow: it
shares with it only the vocabulary (ledger.outcomes), the settlement instant (the one rule,
ledger.tables.settle_instant), the period's bounds (ledger.reading) and the percentile method
(ledger.sql_dialect.percentile, which SQLite's aggregate calls; PostgreSQL's percentile_cont is
independent of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import Connection, select

from ledger.codec import utc
from ledger.outcomes import BROKEN, COUNT_FIELD, DELIVERED, KEPT, SETTLED, Outcome
from ledger.reading import C, I, end_of_day, month_starts, start_of_day
from ledger.sql_dialect import percentile
from ledger.tables import settle_instant
from ledger.trust import DEFAULT_HALF_LIFE_DAYS, TrustScore, beta_reputation

COUNT_FIELDS = ("commitments_due", *COUNT_FIELD.values(), "excluded")
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CommitmentValue:
    """One commitment as the figures read it (a plain value, not the ORM row)."""

    key: str
    team: str
    # The promise judged against, already chosen (first or latest).
    promised_date: date
    # When the promise was made, tz-aware UTC.
    promised_at: datetime | None
    outcome: Outcome
    # UTC; for a missed commitment this is its deadline, not the moment someone noticed.
    settled_at: datetime | None
    delivered_at: datetime | None
    # Late deliveries only.
    slip_days: int | None
    small: bool = False
    excluded: bool = False
    # The end of the promised day in the team's timezone (UTC).
    deadline: datetime | None = None

    @property
    def settlement_time(self) -> datetime | None:
        return settle_instant(
            outcome=self.outcome,
            promised_date=self.promised_date,
            deadline=self.deadline,
            settled_at=self.settled_at,
            delivered_at=self.delivered_at,
        )


# --- counts and ratios -------------------------------------------------------------------------


def outcome_counts(commitments: Iterable[CommitmentValue]) -> dict[str, int]:
    """Counts by outcome; excluded rows are only counted as `excluded`."""
    counts = dict.fromkeys(COUNT_FIELDS, 0)
    for c in commitments:
        if c.excluded:
            counts["excluded"] += 1
            continue
        counts[COUNT_FIELD[c.outcome]] += 1
        if c.outcome in SETTLED:
            counts["commitments_due"] += 1
    return counts


def ratios(counts: dict[str, int]) -> dict[str, float | None]:
    due = counts["commitments_due"]
    if due == 0:
        return {"on_time_rate": None, "say_do_ratio": None}
    kept = counts["delivered_early"] + counts["delivered_on_time"]
    return {"on_time_rate": kept / due, "say_do_ratio": (kept + counts["delivered_late"]) / due}


def median(values: Iterable[float]) -> float | None:
    return percentile(values, 0.5)


# --- streaks -----------------------------------------------------------------------------------


def streaks(outcomes_in_settlement_order: Iterable[Outcome]) -> tuple[int, int]:
    """(current, longest) run of kept promises; broken ends a run, anything else is skipped."""
    current = longest = 0
    for outcome in outcomes_in_settlement_order:
        if outcome in KEPT:
            current += 1
            longest = max(longest, current)
        elif outcome in BROKEN:
            current = 0
    return current, longest


def settlement_order(commitments: Iterable[CommitmentValue], *, until: datetime) -> list[Outcome]:
    """Outcomes of the kept and broken commitments settled up to `until`, oldest first; ties
    by key."""
    settled = [
        (c.settlement_time, c.key, c.outcome)
        for c in commitments
        if not c.excluded
        and c.outcome in SETTLED
        and c.settlement_time is not None
        and c.settlement_time <= until
    ]
    return [outcome for _, _, outcome in sorted(settled)]


# --- times -------------------------------------------------------------------------------------


def lead_time_days(c: CommitmentValue) -> float | None:
    if c.promised_at is None or c.delivered_at is None:
        return None
    return (c.delivered_at - c.promised_at) / _DAY


def first_win_days(commitments: Iterable[CommitmentValue], *, until: datetime) -> float | None:
    """Days from the first promise made to the first kept delivery, both up to `until`."""
    promised = [c.promised_at for c in commitments if not c.excluded and c.promised_at]
    kept = [
        c.delivered_at
        for c in commitments
        if not c.excluded and c.outcome in KEPT and c.delivered_at is not None
    ]
    promised = [t for t in promised if t <= until]
    kept = [t for t in kept if t <= until]
    if not promised or not kept:
        return None
    return (min(kept) - min(promised)) / _DAY


# --- trust -------------------------------------------------------------------------------------


def recency_weight(age_days: float, half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> float:
    """Weight of evidence that is `age_days` old: 1 today, 0.5 after one half-life."""
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    return 0.5 ** (max(age_days, 0.0) / half_life_days)


def weighted_evidence(
    commitments: Iterable[CommitmentValue],
    *,
    as_of: datetime,
    half_life_days=DEFAULT_HALF_LIFE_DAYS,
) -> tuple[float, float]:
    """Recency-weighted (kept, broken) over the commitments settled up to `as_of`."""
    kept = broken = 0.0
    for c in commitments:
        settled = c.settlement_time
        if c.excluded or settled is None or settled > as_of:
            continue
        weight = recency_weight((as_of - settled) / _DAY, half_life_days)
        if c.outcome in KEPT:
            kept += weight
        elif c.outcome in BROKEN:
            broken += weight
    return kept, broken


def trust_score(
    commitments: Iterable[CommitmentValue],
    *,
    as_of: datetime,
    half_life_days=DEFAULT_HALF_LIFE_DAYS,
) -> TrustScore:
    return beta_reputation(
        *weighted_evidence(commitments, as_of=as_of, half_life_days=half_life_days)
    )


# --- the record --------------------------------------------------------------------------------


def monthly_series(commitments: Iterable[CommitmentValue], *, last: date, months: int = 12):
    by_month: dict[tuple[int, int], list[CommitmentValue]] = {}
    for c in commitments:
        by_month.setdefault((c.promised_date.year, c.promised_date.month), []).append(c)
    series = []
    for start in month_starts(last, months):
        counts = outcome_counts(by_month.get((start.year, start.month), []))
        series.append({"month": f"{start:%Y-%m}", **counts, **ratios(counts)})
    return series


def track_record(
    commitments: Iterable[CommitmentValue],
    *,
    period_from: date,
    period_to: date,
    as_of: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    unpromised_deliveries: int = 0,
    first_response_hours: Sequence[float] = (),
    months: int = 12,
    tz: tzinfo = UTC,
) -> dict:
    """The figures of one team or client over [period_from, period_to], from its whole history
    (the period selects by promised date; streaks, time to first win and trust look at all)."""
    history = list(commitments)
    end = end_of_day(period_to, tz)
    period = [c for c in history if period_from <= c.promised_date <= period_to]
    counted = [c for c in period if not c.excluded]
    delivered = [c for c in counted if c.outcome in DELIVERED]
    slips = [
        c.slip_days for c in delivered if c.outcome is Outcome.LATE and c.slip_days is not None
    ]
    lead_times = [t for t in map(lead_time_days, delivered) if t is not None]
    counts = outcome_counts(period)
    current, longest = streaks(settlement_order(history, until=end))
    return {
        **counts,
        **ratios(counts),
        "slip_days_median": median(slips),
        "slip_days_p90": percentile(slips, 0.9),
        "streak_current": current,
        "streak_longest": longest,
        "small_wins": sum(1 for c in delivered if c.small),
        "unpromised_deliveries": unpromised_deliveries,
        "first_response_hours_median": median(first_response_hours),
        "lead_time_days_median": median(lead_times),
        "first_win_days": first_win_days(history, until=end),
        "trust_score": trust_score(history, as_of=as_of, half_life_days=half_life_days).as_dict(),
        "months": monthly_series(history, last=period_to, months=months),
    }


# --- reading the ledger, row by row ------------------------------------------------------------


def _owner(teams, client):
    return C.c.client == client if client is not None else C.c.team.in_(list(teams))


def load_history(
    conn: Connection, *, as_of: datetime, teams=None, client=None
) -> list[CommitmentValue]:
    """Every promise of the team(s) or client as values; a pending row whose deadline has
    passed at `as_of` is read as missed, settled at its deadline."""
    history = []
    rows = conn.execute(select(C).where(_owner(teams, client), C.c.promised_date.is_not(None)))
    for r in rows:
        if r.outcome in (Outcome.UNPROMISED, Outcome.LINKED):
            continue
        outcome, settled, deadline = Outcome(r.outcome), utc(r.settled_at), utc(r.deadline)
        if outcome is Outcome.PENDING and deadline is not None and deadline <= utc(as_of):
            outcome, settled = Outcome.MISSED, deadline
        history.append(
            CommitmentValue(
                key=f"{r.item_id:012d}",  # the SQL path's tie-break: the item id
                team=r.team,
                promised_date=r.promised_date,
                promised_at=utc(r.promised_at),
                outcome=outcome,
                settled_at=settled,
                delivered_at=utc(r.delivered_at),
                slip_days=r.slip_days,
                small=bool(r.small),
                excluded=bool(r.excluded),
                deadline=deadline,
            )
        )
    return history


def reference_record(
    conn: Connection,
    *,
    as_of: datetime,
    period_from: date,
    period_to: date,
    teams: Sequence[str] = ("platform",),
    client: str | None = None,
    tz: tzinfo = UTC,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> dict:
    """The figures of ledger.record.figures, row by row, plus `next_due`."""
    start, end = start_of_day(period_from, tz), end_of_day(period_to, tz)
    rows = conn.execute(select(C).where(_owner(teams, client))).all()
    unpromised = sum(
        1
        for r in rows
        if r.outcome == Outcome.UNPROMISED and not r.excluded and start <= utc(r.delivered_at) < end
    )
    excluded_items = {r.item_id for r in rows if r.excluded}
    items = conn.execute(select(I).where(I.c.team.in_(list(teams)))).all()
    responses = [
        i.first_response_seconds / 3600.0
        for i in items
        if i.first_response_seconds is not None
        and i.opened_at is not None
        and start <= utc(i.opened_at) < end
        and i.id not in excluded_items
    ]
    history = load_history(conn, as_of=as_of, teams=teams, client=client)
    found = track_record(
        history,
        period_from=period_from,
        period_to=period_to,
        as_of=as_of,
        half_life_days=half_life_days,
        unpromised_deliveries=unpromised,
        first_response_hours=responses,
        tz=tz,
    )
    today = as_of.astimezone(tz).date()
    ahead = [
        c.promised_date
        for c in history
        if not c.excluded
        and c.outcome is not Outcome.DESCOPED
        and c.promised_date >= max(period_from, today)
    ]
    found["next_due"] = min(ahead, default=None) if as_of < end else None
    return found
