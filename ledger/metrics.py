"""The track record of a team or client: pure figures over commitment rows.

No database and no I/O: `track_record` takes the rows and returns the record object of the API.
Each figure has its own small helper taking plain values (outcomes, numbers), so that the same
arithmetic can later be fed by SQL aggregates instead of Python loops. The definitions, with a
worked example, are in docs/metrics.md.
"""

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from ledger.outcomes import BROKEN, DELIVERED, KEPT, SETTLED, Commitment, Outcome
from ledger.trust import DEFAULT_HALF_LIFE_DAYS, trust_score

COUNT_FIELDS = (
    "commitments_due",
    "pending",
    "delivered_early",
    "delivered_on_time",
    "delivered_late",
    "missed",
    "dropped",
    "descoped",
    "excluded",
)

_FIELD_OF = {
    Outcome.EARLY: "delivered_early",
    Outcome.ON_TIME: "delivered_on_time",
    Outcome.LATE: "delivered_late",
    Outcome.MISSED: "missed",
    Outcome.DROPPED: "dropped",
    Outcome.DESCOPED: "descoped",
    Outcome.PENDING: "pending",
}

_DAY = timedelta(days=1)


# --- counts and ratios -------------------------------------------------------------------------


def outcome_counts(commitments: Iterable[Commitment]) -> dict[str, int]:
    """Counts by outcome; excluded rows are only counted as `excluded`."""
    counts = dict.fromkeys(COUNT_FIELDS, 0)
    for commitment in commitments:
        if commitment.excluded:
            counts["excluded"] += 1
            continue
        counts[_FIELD_OF[commitment.outcome]] += 1
        if commitment.outcome in SETTLED:
            counts["commitments_due"] += 1
    return counts


def ratios(counts: dict[str, int]) -> dict[str, float | None]:
    """On-time rate and say/do ratio from counts; None when nothing was due."""
    due = counts["commitments_due"]
    if due == 0:
        return {"on_time_rate": None, "say_do_ratio": None}
    kept = counts["delivered_early"] + counts["delivered_on_time"]
    return {
        "on_time_rate": kept / due,
        "say_do_ratio": (kept + counts["delivered_late"]) / due,
    }


# --- percentiles -------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks.

    Same method as numpy's default and PostgreSQL's percentile_cont, so a SQL aggregate gives the
    same number: position (n - 1) * q in the sorted values, interpolated between its neighbours.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be within [0, 1]")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return float(ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower))


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


def settlement_order(commitments: Iterable[Commitment], *, until: datetime) -> list[Outcome]:
    """Outcomes of the kept and broken commitments settled up to `until`, oldest first.

    A miss is ordered by its deadline (its settled_at), and so is a late delivery (its
    settlement_time: broken when the deadline passed, not when finally delivered), which is why
    the order is by settlement and not by promised date. Ties are broken by key so that the
    order is deterministic.
    """
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


def end_of_day(day: date, tz: tzinfo = UTC) -> datetime:
    """The instant a day ends (the next midnight) in `tz`.

    Pass the team's timezone: the ledger rules put a miss's deadline at the team's midnight, and a
    miss on the period's last day must settle within the period.
    """
    return datetime.combine(day + _DAY, time.min, tzinfo=tz)


def lead_time_days(commitment: Commitment) -> float | None:
    """Days from making the promise to delivering it."""
    if commitment.promised_at is None or commitment.delivered_at is None:
        return None
    return (commitment.delivered_at - commitment.promised_at) / _DAY


def first_win_days(commitments: Iterable[Commitment], *, until: datetime) -> float | None:
    """Days from the first promise made to the first kept delivery, both up to `until`."""
    first_promise = first_kept = None
    for c in commitments:
        if c.excluded:
            continue
        if c.promised_at is not None and c.promised_at <= until:
            first_promise = _earliest(first_promise, c.promised_at)
        if c.outcome in KEPT and c.delivered_at is not None and c.delivered_at <= until:
            first_kept = _earliest(first_kept, c.delivered_at)
    if first_promise is None or first_kept is None:
        return None
    return (first_kept - first_promise) / _DAY


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None else min(current, candidate)


# --- months ------------------------------------------------------------------------------------


def month_starts(last: date, months: int) -> list[date]:
    """First days of the `months` calendar months ending with `last`'s month, oldest first."""
    index = last.year * 12 + last.month - 1
    return [date(i // 12, i % 12 + 1, 1) for i in range(index - months + 1, index + 1)]


def monthly_series(
    commitments: Iterable[Commitment], *, last: date, months: int = 12
) -> list[dict]:
    """Counts and ratios per month of the promised date, for the last `months` months."""
    if months < 0:
        raise ValueError("months cannot be negative")
    by_month: dict[tuple[int, int], list[Commitment]] = {}
    for c in commitments:
        by_month.setdefault((c.promised_date.year, c.promised_date.month), []).append(c)
    series = []
    for start in month_starts(last, months):
        counts = outcome_counts(by_month.get((start.year, start.month), []))
        series.append({"month": f"{start:%Y-%m}", **counts, **ratios(counts)})
    return series


# --- the record --------------------------------------------------------------------------------


def track_record(
    commitments: Iterable[Commitment],
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
    """The record object of one team or client over [period_from, period_to].

    `commitments` is the whole history of the team or client: the period selects by promised
    date, while streaks, time to first win and the trust score look at all of it. `tz` is the
    team's timezone, where the period ends.
    """
    if period_from > period_to:
        raise ValueError("period_from is after period_to")
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
