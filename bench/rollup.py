"""A team's figures kept current one delivery at a time, instead of recomputed whole: what
bench_incremental.py measures against a recompute of the team. The service does not keep
rollups (each request computes its record, fast enough at a million rows: docs/benchmarks.md);
this is the design ready for a worker to keep when requests outgrow that.

A delivery changes one commitment: its month's counts and percentiles, the trust evidence and
the streak. So the update re-aggregates that one month (an index range of a few hundred rows),
rolls the trust evidence forward with the forgetting factor itself (evidence at a later moment
is the earlier evidence times 0.5 ** (elapsed / half_life), plus the new settlement's weight:
Jøsang and Ismail's recursive form), and extends or ends the streak. Anything that breaks those
shortcuts falls back to the team's full recompute (`bench.recompute.recompute`):
- the delivery settles before the last settlement already counted (out of order; a late
  delivery settles at its deadline, so usually it does);
- the row was already settled (a reopened item delivered again changes old evidence);
- a pending deadline passed since the last update (a miss the clock made, not an event);
- the team's first kept promise (its time to first win changes).
The figures stay derived: `build` recomputes from the ledger, and a test holds an updated
rollup equal to a fresh one (tests/test_bench_rollup.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import false, func, or_, select

from bench.recompute import month_figures, month_rows, recompute
from ledger.codec import utc
from ledger.outcomes import KEPT, SETTLED, Outcome
from ledger.reading import C, at, month_end, outcome_in, overdue, promised_in
from ledger.sql_dialect import dialect_of
from ledger.trust import DEFAULT_HALF_LIFE_DAYS, beta_reputation

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class TeamRollup:
    team: str
    as_of: datetime
    half_life_days: float
    figures: dict  # one team's entry of recompute
    last_settled: tuple[datetime, int] | None  # (settlement time, item id), last in order
    fallbacks: int = 0  # how many updates had to recompute the team (for the benchmark)


def _decay(days: float, half_life_days: float) -> float:
    return 0.5 ** (max(days, 0.0) / half_life_days)


def last_settlement(conn, *, team: str, as_of: datetime):
    """(settle_at, item_id) of the team's last non-excluded kept or broken row settled by
    `as_of`, or None: one step down ix_commitments_team_settle."""
    return conn.execute(
        select(C.c.settle_at, C.c.item_id)
        .where(
            C.c.team == team,
            C.c.excluded == false(),
            C.c.settle_at <= at(as_of),
            or_(outcome_in(SETTLED), overdue(as_of)),
        )
        .order_by(C.c.settle_at.desc(), C.c.item_id.desc())
        .limit(1)
    ).first()


def build(conn, *, team: str, as_of: datetime, half_life_days=DEFAULT_HALF_LIFE_DAYS):
    """The team's rollup from the ledger: its full recompute and its last settlement."""
    found = recompute(conn, as_of=as_of, teams=[team], half_life_days=half_life_days)
    last = last_settlement(conn, team=team, as_of=as_of)
    return TeamRollup(
        team=team,
        as_of=utc(as_of),
        half_life_days=half_life_days,
        figures=found.get(team) or _empty(),
        last_settled=(utc(last.settle_at), last.item_id) if last else None,
    )


def apply_delivery(conn, rollup: TeamRollup, *, item_id: int, previous_outcome: str, as_of):
    """The rollup after the commitment of `item_id` was settled (read from the ledger)."""
    as_of = utc(as_of)
    row = conn.execute(
        select(C.c.promised_date, C.c.outcome, C.c.settle_at, C.c.excluded).where(
            C.c.item_id == item_id
        )
    ).one()
    # Its place in settlement order (ledger.tables.settle_instant): a late delivery's is its
    # deadline, usually before the last settlement counted, and then the team is recomputed.
    settled = utc(row.settle_at)
    outcome = Outcome(row.outcome)
    if not _can_roll(conn, rollup, outcome, previous_outcome, settled, item_id, as_of):
        fresh = build(conn, team=rollup.team, as_of=as_of, half_life_days=rollup.half_life_days)
        return replace(fresh, fallbacks=rollup.fallbacks + 1)
    figs = dict(rollup.figures)
    if row.promised_date is not None:
        day = row.promised_date
        rows = month_rows(
            conn,
            where=(C.c.team == rollup.team) & promised_in(day.replace(day=1), month_end(day)),
            bucket=dialect_of(conn).month(C.c.promised_date),
            as_of=as_of,
            until=as_of,
        )
        figs["months"] = {**figs["months"], f"{day:%Y-%m}": month_figures(rows[0])}
    if outcome in SETTLED and not row.excluded:
        decay = _decay((as_of - rollup.as_of) / _DAY, rollup.half_life_days)
        weight = _decay((as_of - settled) / _DAY, rollup.half_life_days)
        kept = figs["evidence"]["kept"] * decay + (weight if outcome in KEPT else 0.0)
        broken = figs["evidence"]["broken"] * decay + (0.0 if outcome in KEPT else weight)
        current = figs["streak_current"] + 1 if outcome in KEPT else 0
        figs.update(
            evidence={"kept": kept, "broken": broken},
            trust_score=beta_reputation(kept, broken).as_dict(),
            streak_current=current,
            streak_longest=max(figs["streak_longest"], current),
        )
        return replace(rollup, as_of=as_of, figures=figs, last_settled=(settled, item_id))
    return replace(rollup, as_of=as_of, figures=figs)


def _can_roll(conn, rollup, outcome, previous_outcome, settled, item_id, as_of) -> bool:
    if as_of < rollup.as_of or previous_outcome in SETTLED:
        return False
    if outcome in SETTLED:
        if settled is None or settled > as_of:
            return False
        if rollup.last_settled is not None and (settled, item_id) <= rollup.last_settled:
            return False
        if outcome in KEPT and rollup.figures["first_win_days"] is None:
            return False
    crossed = conn.execute(
        select(func.count()).where(
            C.c.team == rollup.team,
            C.c.outcome == Outcome.PENDING.value,
            C.c.deadline > rollup.as_of,
            C.c.deadline <= as_of,
        )
    ).scalar_one()
    return crossed == 0


def _empty() -> dict:
    return {
        "months": {},
        "streak_current": 0,
        "streak_longest": 0,
        "first_win_days": None,
        "trust_score": beta_reputation(0.0, 0.0).as_dict(),
        "evidence": {"kept": 0.0, "broken": 0.0},
    }
