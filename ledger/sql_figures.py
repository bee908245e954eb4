"""The figures aggregated in the database: the statements the record, the badge and the
milestones are made of. docs/metrics.md, "The SQL path".

SQL does the per-row work over one owner's index ranges and hands back a few rows: counts per
group (`counts`), percentiles (`percentiles`), and one pass in settlement order for the streaks
and the trust evidence (`settlement_pass`). Engine differences are in `ledger.sql_dialect`; which
rows count, the period and the read-as-of rule in `ledger.reading`.

`owner` is the column grouped by (team or client), or (GROUP BY expression, label) when the
grouping key must differ from the label (bench/recompute.py reads the whole table that way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    String,
    and_,
    case,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from ledger.codec import utc
from ledger.outcomes import COUNT_FIELD, DELIVERED, KEPT, SETTLED, Outcome
from ledger.reading import C, I, at, outcome_in, overdue, promises
from ledger.sql_dialect import SettlementWalk, dialect_of, prepare

# --- counts ------------------------------------------------------------------------------------


def _grouping(owner, groups: dict) -> tuple[list, list]:
    """(GROUP BY expressions, labelled columns) of the owner and the groups; each is an
    expression, or (GROUP BY expression, label expression)."""
    group_by, labels = [], []
    for name, expr in {"owner": owner, **groups}.items():
        key, label = expr if isinstance(expr, tuple) else (expr, expr)
        group_by.append(key)
        labels.append(label.label(name))
    return group_by, labels


def counts(conn, *, owner, where, groups: dict, as_of: datetime, until: datetime) -> list[dict]:
    """One dict per (owner, *groups) of the owner's promises matching `where`: the count of each
    outcome (an overdue pending row counted as missed), excluded rows, small wins, and the
    owner's first promise and first kept delivery up to `until`.

    Plain counts only, so PostgreSQL hash-aggregates them as it does a plain GROUP BY.
    """
    live = C.c.excluded == false()
    until_lit = at(until)
    group_by, labels = _grouping(owner, groups)

    def count(*conditions):
        return func.count().filter(and_(live, *conditions))

    stmt = (
        select(
            *labels,
            func.count().filter(C.c.excluded == true()).label("excluded"),
            *(count(C.c.outcome == o.value).label(field) for o, field in COUNT_FIELD.items()),
            count(overdue(as_of)).label("overdue"),
            count(outcome_in(DELIVERED), C.c.small == true()).label("small_wins"),
            func.min(C.c.promised_at)
            .filter(and_(live, C.c.promised_at <= until_lit))
            .label("first_promise"),
            func.min(C.c.delivered_at)
            .filter(and_(live, outcome_in(KEPT), C.c.delivered_at <= until_lit))
            .label("first_kept"),
        )
        .where(promises(where))
        .group_by(*group_by)
    )
    rows = []
    for row in conn.execute(stmt):
        found = dict(row._mapping)
        late = found.pop("overdue")  # the read-as-of rule: pending past its deadline is missed
        found[COUNT_FIELD[Outcome.MISSED]] += late
        found[COUNT_FIELD[Outcome.PENDING]] -= late
        rows.append(found)
    return rows


def counts_of(row: dict | None) -> dict[str, int]:
    """The record's counts from a `counts` row (zeros for None): commitments_due, then each
    outcome's count and `excluded`."""
    found = {f: int(row[f] or 0) if row else 0 for f in (*COUNT_FIELD.values(), "excluded")}
    due = sum(found[COUNT_FIELD[o]] for o in SETTLED)
    return {"commitments_due": due, **found}


def ratios(counted: dict[str, int]) -> dict[str, float | None]:
    """On-time rate and say/do ratio from the counts; None when nothing was due."""
    due = counted["commitments_due"]
    if due == 0:
        return {"on_time_rate": None, "say_do_ratio": None}
    kept = sum(counted[COUNT_FIELD[o]] for o in KEPT)
    return {
        "on_time_rate": kept / due,
        "say_do_ratio": (kept + counted[COUNT_FIELD[Outcome.LATE]]) / due,
    }


# --- percentiles -------------------------------------------------------------------------------


def percentiles(conn, *, owner, where, groups: dict, lead_time: bool = True) -> list[dict]:
    """Slip median and p90 over the late rows (and, with `lead_time`, the lead-time median over
    the delivered ones), one dict per (owner, *groups) that has any.

    A statement of its own, because an ordered-set aggregate (percentile_cont) forces PostgreSQL
    to sort every row of its GROUP BY; this one reads only the rows it needs.
    """
    d = dialect_of(conn)
    prepare(conn)
    late = C.c.outcome == Outcome.LATE.value
    columns = [
        d.percentile(C.c.slip_days, 0.5, late).label("slip_days_median"),
        d.percentile(C.c.slip_days, 0.9, late).label("slip_days_p90"),
    ]
    needed = and_(late, C.c.slip_days.is_not(None))
    if lead_time:
        lead = d.epoch_days(C.c.delivered_at) - d.epoch_days(C.c.promised_at)
        timed = and_(C.c.promised_at.is_not(None), C.c.delivered_at.is_not(None))
        columns.append(d.percentile(lead, 0.5, timed).label("lead_time_days_median"))
        needed = or_(needed, and_(outcome_in(DELIVERED), timed))
    group_by, labels = _grouping(owner, groups)
    stmt = (
        select(*labels, *columns)
        .where(promises(where), C.c.excluded == false(), needed)
        .group_by(*group_by)
    )
    return [dict(row._mapping) for row in conn.execute(stmt)]


# --- settlement order: streaks and trust evidence ----------------------------------------------


@dataclass(frozen=True)
class Settled:
    """What the settlement-order pass finds for one owner."""

    current: int  # streak_current
    longest: int  # streak_longest
    w_kept: float  # recency-weighted kept promises settled by as_of (trust evidence)
    w_broken: float  # the same for broken ones


NOTHING_SETTLED = Settled(0, 0, 0.0, 0.0)


def streak_runs(marks: str) -> tuple[int, int]:
    """(current, longest) run of kept promises in settlement order: the streak rule.

    `marks` has one character per kept ('0') or broken ('1') promise, in settlement order. A
    kept one extends the run and a broken one ends it: the current streak is the run of '0's
    at the end, the longest the longest run of '0's anywhere.
    """
    return len(marks) - len(marks.rstrip("0")), max(map(len, marks.split("1")))


def settlement_pass(
    conn, *, owner, where, as_of: datetime, until: datetime, half_life_days: float
) -> dict[str, Settled]:
    """{owner: Settled}: the streaks over the kept and broken promises settled by `until` (the
    end of the period), and the recency-weighted trust evidence of those settled by `as_of`,
    in one pass over the owner's rows in settlement order, (settle_at, item_id).

    An overdue pending row is among the broken, at its deadline (the read-as-of rule). A team's
    rows come in that order from ix_commitments_team_settle (an index-only scan), so they are not
    sorted: PostgreSQL aggregates them with string_agg(... ORDER BY ...); SQLite walks them with
    the tr_settlement aggregate, and when the rows do not come in that order (it checks), or for
    a client, whose rows have no such index, through an ordered SELECT instead.
    """
    d = dialect_of(conn)
    seq = and_(
        where,
        C.c.excluded == false(),
        C.c.settle_at <= at(max(utc(as_of), utc(until))),
        or_(outcome_in(SETTLED), overdue(as_of)),
    )
    kept = outcome_in(KEPT)
    in_streak = C.c.settle_at <= at(until)
    evidence = C.c.settle_at <= at(as_of)
    weight = d.recency_weight(C.c.settle_at, as_of, half_life_days)
    if d.pg:
        mark = case((kept, literal_column("'0'")), else_=literal_column("'1'"))
        order = aggregate_order_by(literal_column("''"), C.c.settle_at, C.c.item_id)
        stmt = (
            select(
                owner,
                func.sum(weight).filter(and_(evidence, kept)),
                func.sum(weight).filter(and_(evidence, ~kept)),
                func.string_agg(mark, order).filter(in_streak),
            )
            .where(seq)
            .group_by(owner)
        )
        found = {
            name: (w_kept, w_broken, marks) for name, w_kept, w_broken, marks in conn.execute(stmt)
        }
    else:
        found = _sqlite_walk(
            conn, owner, seq, kept, in_streak, case((evidence, weight), else_=null())
        )
    return {
        name: Settled(*streak_runs(marks or ""), w_kept or 0.0, w_broken or 0.0)
        for name, (w_kept, w_broken, marks) in found.items()
    }


def _sqlite_walk(conn, owner, seq, kept, in_streak, weight) -> dict[str, tuple]:
    """SQLite: {owner: (w_kept, w_broken, marks)} through `SettlementWalk`."""
    prepare(conn)
    settle_at = type_coerce(C.c.settle_at, String)  # as stored: text, compared as text
    columns = (kept, in_streak, settle_at, C.c.item_id, weight)
    if owner is C.c.team:
        stmt = select(owner, func.tr_settlement(*columns)).where(seq).group_by(owner)
        found = dict(conn.execute(stmt).all())
        if all(v is not None for v in found.values()):
            return {name: SettlementWalk.parse(v) for name, v in found.items()}
    walks: dict[str, SettlementWalk] = {}
    ordered = select(owner, *columns).where(seq).order_by(owner, C.c.settle_at, C.c.item_id)
    for name, *row in conn.execute(ordered):
        walk = walks.get(name) or walks.setdefault(name, SettlementWalk())
        walk.step(*row)
    return {name: SettlementWalk.parse(walk.finalize()) for name, walk in walks.items()}


# --- what lies ahead, unpromised wins, first responses ----------------------------------------


def next_due(conn, *, where, on_or_after: date) -> date | None:
    """The earliest promised date on or after `on_or_after` among the promises matching `where`
    that still stand (not excluded, not descoped): the next day a promise falls due."""
    stmt = select(func.min(C.c.promised_date)).where(
        promises(where),
        C.c.promised_date >= on_or_after,
        C.c.excluded == false(),
        C.c.outcome != Outcome.DESCOPED.value,
    )
    found = conn.execute(stmt).scalar_one()
    return date.fromisoformat(found) if isinstance(found, str) else found


def unpromised_deliveries(conn, *, where, start: datetime, end: datetime) -> int:
    """Items delivered in [start, end) with no promise; excluded rows are left out."""
    stmt = select(func.count()).where(
        where,
        C.c.outcome == Outcome.UNPROMISED.value,
        C.c.excluded == false(),
        C.c.delivered_at >= at(start),
        C.c.delivered_at < at(end),
    )
    return conn.execute(stmt).scalar_one()


def first_response_median(
    conn, *, teams: Sequence[str], start: datetime, end: datetime
) -> float | None:
    """Median first-response time, in hours, of the teams' items opened in [start, end); an item
    whose ledger row was excluded by hand (a duplicate, a mistake) is left out like its row."""
    d = dialect_of(conn)
    prepare(conn)
    stmt = (
        select(d.percentile(I.c.first_response_seconds / 3600.0, 0.5, true()))
        .select_from(I.outerjoin(C, C.c.item_id == I.c.id))
        .where(
            I.c.team.in_(list(teams)),
            I.c.first_response_seconds.is_not(None),
            I.c.opened_at >= at(start),
            I.c.opened_at < at(end),
            or_(C.c.excluded.is_(None), C.c.excluded == false()),
        )
    )
    found = conn.execute(stmt).scalar_one()
    return None if found is None else float(found)
