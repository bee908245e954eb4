"""The figures aggregated in the database: one GROUP BY pass and one window pass over the ledger.

This is the path of the full recompute (every team, every month, from a million rows): SQL
(SQLAlchemy core, the same statements on SQLite and PostgreSQL) does the per-row work and hands
back one small row per (owner, bucket); `ledger.figures` turns those into the record with the
same helpers as the pure path (`ratios`, `beta_reputation`). Definitions: docs/metrics.md,
section "The SQL path".

Engine differences, each in one helper below:
- percentiles: PostgreSQL's percentile_cont; on SQLite an aggregate registered on the connection
  that calls ledger.metrics.percentile itself, so both are linear interpolation (type 7);
- times: PostgreSQL's extract(epoch); SQLite stores text and has julianday();
- recency weight 0.5 ** (age / half_life): power() on both (SQLite's math functions, or a
  registered deterministic function where the library was built without them).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import (
    DateTime,
    Float,
    and_,
    case,
    cast,
    extract,
    false,
    func,
    literal,
    null,
    or_,
    select,
)

from ledger.metrics import percentile
from ledger.queries import PROMISE_OUTCOMES, C, utc

KEPT = ("early", "on_time")
BROKEN = ("late", "missed", "dropped")
DELIVERED = ("early", "on_time", "late")
_UNIX_EPOCH_JULIAN_DAY = 2440587.5


class _Percentile:
    """SQLite aggregate percentile_cont(value, q) with ledger.metrics' interpolation."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.q = 0.5

    def step(self, value, q) -> None:
        if value is not None:
            self.values.append(value)
        self.q = q

    def finalize(self):
        return percentile(self.values, self.q)


def _sqlite_has_power() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT power(0.5, 2.0)")
        return True
    except sqlite3.OperationalError:
        return False


_SQLITE_HAS_POWER = _sqlite_has_power()


def prepare(conn) -> None:
    """Register the SQLite functions on this connection (cheap; a no-op on PostgreSQL)."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    raw.create_aggregate("tr_percentile", 2, _Percentile)
    if not _SQLITE_HAS_POWER:
        raw.create_function("power", 2, math.pow, deterministic=True)


@dataclass(frozen=True)
class Dialect:
    pg: bool

    def epoch_days(self, col):
        """Days since 1970-01-01 UTC, fractional."""
        if self.pg:
            return cast(extract("epoch", col), Float) / 86400.0
        return func.julianday(col) - _UNIX_EPOCH_JULIAN_DAY

    def greatest(self, a, b):
        return func.greatest(a, b) if self.pg else func.max(a, b)

    def month(self, col):
        return func.to_char(col, "YYYY-MM") if self.pg else func.strftime("%Y-%m", col)

    def percentile(self, col, q: float, where):
        if self.pg:
            return func.percentile_cont(q).within_group(col).filter(where)
        # FILTER, not CASE: SQLite then never calls the Python step for the other rows.
        return func.tr_percentile(col, q).filter(where)


def dialect_of(conn) -> Dialect:
    return Dialect(pg=conn.dialect.name == "postgresql")


def effective_rows(d: Dialect, *, owner, where, as_of: datetime, bucket=None):
    """The ledger rows as the figures read them: an overdue pending row becomes a miss settled
    at its deadline, as in ledger.queries.load_history."""
    as_of_lit = literal(utc(as_of), DateTime(timezone=True))
    overdue = and_(C.c.outcome == "pending", C.c.deadline.is_not(None), C.c.deadline <= as_of_lit)
    return select(
        owner.label("owner"),
        (bucket if bucket is not None else null()).label("bucket"),
        C.c.item_id,
        case((overdue, "missed"), else_=C.c.outcome).label("outcome"),
        case((overdue, C.c.deadline), else_=func.coalesce(C.c.settled_at, C.c.delivered_at)).label(
            "settled"
        ),
        C.c.excluded,
        C.c.small,
        C.c.slip_days,
        C.c.promised_at,
        C.c.delivered_at,
    ).where(where, C.c.promised_date.is_not(None), C.c.outcome.in_(PROMISE_OUTCOMES))


def bucket_aggregates(
    conn,
    *,
    owner,
    where,
    bucket,
    as_of: datetime,
    until: datetime,
    half_life_days: float,
    lead_time: bool = True,
) -> list:
    """One row per (owner, bucket): counts, small wins, slip (and, with `lead_time`, lead-time)
    percentiles over the bucket's rows, and the owner's history sums split over the buckets
    (recency-weighted kept and broken settled by `as_of`; first promise and first kept delivery
    up to `until`).

    Two statements, because an ordered-set aggregate (percentile_cont) forces PostgreSQL to sort
    every row of the GROUP BY, while plain sums and counts hash-aggregate as the floor does; the
    percentiles then read only the rows they need (late ones; delivered ones for lead time).
    """
    d = dialect_of(conn)
    prepare(conn)
    r = effective_rows(d, owner=owner, where=where, as_of=as_of, bucket=bucket).subquery()
    live = r.c.excluded == false()
    as_of_lit = literal(utc(as_of), DateTime(timezone=True))
    until_lit = literal(utc(until), DateTime(timezone=True))
    as_of_days = utc(as_of).timestamp() / 86400.0

    def count(outcome):
        return func.count().filter(and_(live, r.c.outcome == outcome))

    # Clock skew can put a settlement after as_of; such evidence must not weigh more than 1.
    age = d.greatest(as_of_days - d.epoch_days(r.c.settled), 0.0)
    weight = func.power(0.5, age / float(half_life_days))
    evidence = and_(live, r.c.settled.is_not(None), r.c.settled <= as_of_lit)
    delivered = and_(live, r.c.outcome.in_(DELIVERED))
    sums = select(
        r.c.owner,
        r.c.bucket,
        func.count().filter(r.c.excluded == True).label("excluded"),  # noqa: E712
        count("early").label("delivered_early"),
        count("on_time").label("delivered_on_time"),
        count("late").label("delivered_late"),
        count("missed").label("missed"),
        count("dropped").label("dropped"),
        count("descoped").label("descoped"),
        count("pending").label("pending"),
        func.count().filter(and_(delivered, r.c.small == True)).label("small_wins"),  # noqa: E712
        func.sum(weight).filter(and_(evidence, r.c.outcome.in_(KEPT))).label("w_kept"),
        func.sum(weight).filter(and_(evidence, r.c.outcome.in_(BROKEN))).label("w_broken"),
        func.min(r.c.promised_at)
        .filter(and_(live, r.c.promised_at <= until_lit))
        .label("first_promise"),
        func.min(r.c.delivered_at)
        .filter(and_(live, r.c.outcome.in_(KEPT), r.c.delivered_at <= until_lit))
        .label("first_kept"),
    ).group_by(r.c.owner, r.c.bucket)
    rows = {(row.owner, row.bucket): dict(row._mapping) for row in conn.execute(sums)}
    for row in rows.values():
        row.update(slip_days_median=None, slip_days_p90=None, lead_time_days_median=None)
    late = r.c.outcome == "late"
    columns = [
        d.percentile(r.c.slip_days, 0.5, late).label("slip_days_median"),
        d.percentile(r.c.slip_days, 0.9, late).label("slip_days_p90"),
    ]
    needed = and_(late, r.c.slip_days.is_not(None))
    if lead_time:
        lead = d.epoch_days(r.c.delivered_at) - d.epoch_days(r.c.promised_at)
        timed = and_(r.c.promised_at.is_not(None), r.c.delivered_at.is_not(None))
        columns.append(d.percentile(lead, 0.5, timed).label("lead_time_days_median"))
        needed = or_(needed, and_(r.c.outcome.in_(DELIVERED), timed))
    pcts = (
        select(r.c.owner, r.c.bucket, *columns).where(live, needed).group_by(r.c.owner, r.c.bucket)
    )
    for row in conn.execute(pcts):
        rows[(row.owner, row.bucket)].update(
            (k, v) for k, v in row._mapping.items() if k not in ("owner", "bucket")
        )
    return [SimpleNamespace(**row) for row in rows.values()]


def streaks(conn, *, owner, where, as_of: datetime, until: datetime) -> dict[str, tuple[int, int]]:
    """{owner: (current, longest)} run of kept promises in settlement order, up to `until`.

    One sort: number the owner's kept and broken rows in settlement order (settlement time, then
    item id, as ledger.metrics.settlement_order); at each row the run is its number minus the
    number of the last broken row so far (a running max). The longest run is the largest such
    difference, the current one the count of rows after the last broken one.
    """
    d = dialect_of(conn)
    r = effective_rows(d, owner=owner, where=where, as_of=as_of).subquery()
    until_lit = literal(utc(until), DateTime(timezone=True))
    order = (r.c.settled, r.c.item_id)
    broken = r.c.outcome.in_(BROKEN)
    numbered = (
        select(
            r.c.owner,
            r.c.settled,
            r.c.item_id,
            case((broken, 1), else_=0).label("broken"),
            func.row_number().over(partition_by=r.c.owner, order_by=order).label("n"),
        )
        .where(
            r.c.excluded == false(),
            r.c.outcome.in_(KEPT + BROKEN),
            r.c.settled.is_not(None),
            r.c.settled <= until_lit,
        )
        .subquery()
    )
    last_broken = case((numbered.c.broken == 1, numbered.c.n), else_=0)
    runs = select(
        numbered.c.owner,
        numbered.c.n,
        last_broken.label("broken_n"),
        (
            numbered.c.n
            - func.max(last_broken).over(
                partition_by=numbered.c.owner, order_by=(numbered.c.settled, numbered.c.item_id)
            )
        ).label("run"),
    ).subquery()
    stmt = select(
        runs.c.owner, func.max(runs.c.n) - func.max(runs.c.broken_n), func.max(runs.c.run)
    ).group_by(runs.c.owner)
    return {owner: (int(cur), int(longest)) for owner, cur, longest in conn.execute(stmt)}
