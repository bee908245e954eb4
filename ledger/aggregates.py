"""The figures aggregated in the database: one GROUP BY pass and one settlement-order pass.

This is the path of the full recompute (every team, every month, from a million rows): SQL
(SQLAlchemy core, the same statements on SQLite and PostgreSQL) does the per-row work and hands
back one small row per (owner, bucket); `ledger.figures` turns those into the record with the
same helpers as the pure path (`ratios`, `beta_reputation`). Definitions: docs/metrics.md,
section "The SQL path".

Engine differences, each in one helper below:
- percentiles: PostgreSQL's percentile_cont; on SQLite an aggregate registered on the connection
  that calls ledger.metrics.percentile itself, so both are linear interpolation (type 7);
- times: PostgreSQL's date_part('epoch'); SQLite stores text and has julianday();
- recency weight 0.5 ** (age / half_life): power() on both (SQLite's math functions, or a
  registered deterministic function where the library was built without them);
- streaks: on PostgreSQL window functions over the (team, settle_at, item_id) index order; on
  SQLite, whose window functions cost more than the rest of the recompute, an aggregate
  registered on the connection that walks one owner's rows in that same index order (and
  checks it: if the rows ever arrive out of order it gives up and the window statement runs).

Every statement reads the stored columns directly: `settle_at` (ledger.tables.settle_instant)
makes "an overdue pending row is a miss settled at its deadline" a plain comparison,
`outcome = 'pending' AND settle_at <= as_of`, with no per-row CASE in a subquery.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import (
    DateTime,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from ledger.metrics import percentile
from ledger.queries import PROMISE_OUTCOMES, C, utc

KEPT = ("early", "on_time")
BROKEN = ("late", "missed", "dropped")
PENDING = "pending"
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


def _sqlite_has_math() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT power(0.5, 2.0), exp(1.0)")
        return True
    except sqlite3.OperationalError:
        return False


_SQLITE_HAS_MATH = _sqlite_has_math()


class _Streak:
    """SQLite aggregate tr_streak(broken, in_streak, settle_at, item_id, weight) ->
    "current longest w_kept w_broken": the streaks over the rows `in_streak` (settled by the
    period's end), the weights summed over the rows where weight is not NULL (settled by
    as_of).

    Fed one owner's kept and broken rows in settlement order (the index order of GROUP BY
    team over ix_commitments_team_settle). It checks that order as it goes; rows out of order
    make it answer NULL, and the caller then uses the window statement instead.
    """

    __slots__ = ("current", "longest", "w_kept", "w_broken", "settled", "item_id", "ordered")

    def __init__(self) -> None:
        self.current = self.longest = 0
        self.w_kept = self.w_broken = 0.0
        self.settled, self.item_id = "", -1  # SQLite hands settle_at over as text
        self.ordered = True

    def step(self, broken, in_streak, settled, item_id, weight) -> None:
        # About a million calls in a full recompute: plain comparisons, no tuples.
        if settled <= self.settled and (settled < self.settled or item_id <= self.item_id):
            self.ordered = False
        self.settled, self.item_id = settled, item_id
        if broken:
            if in_streak:
                self.current = 0
            if weight is not None:
                self.w_broken += weight
        else:
            if in_streak:
                self.current += 1
                if self.current > self.longest:
                    self.longest = self.current
            if weight is not None:
                self.w_kept += weight

    def finalize(self):
        if not self.ordered:
            return None
        return f"{self.current} {self.longest} {self.w_kept!r} {self.w_broken!r}"

    @staticmethod
    def parse(text: str) -> Settled:
        current, longest, w_kept, w_broken = text.split()
        return Settled(int(current), int(longest), float(w_kept), float(w_broken))


def prepare(conn) -> None:
    """Register the SQLite functions on this connection (cheap; a no-op on PostgreSQL)."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    raw.create_aggregate("tr_percentile", 2, _Percentile)
    raw.create_aggregate("tr_streak", 5, _Streak)
    if not _SQLITE_HAS_MATH:
        raw.create_function("power", 2, math.pow, deterministic=True)
        raw.create_function("exp", 1, math.exp, deterministic=True)


@dataclass(frozen=True)
class Dialect:
    pg: bool

    def epoch_days(self, col):
        """Days since 1970-01-01 UTC, fractional."""
        return self.epoch_days_scaled(col, 1.0)

    def epoch_days_scaled(self, col, factor: float):
        """factor * days since 1970-01-01 UTC, plus a constant (the same for every row).

        date_part, not extract: since PostgreSQL 14 extract returns numeric, whose arithmetic
        costs about 0.2 s over a million rows; date_part is double precision. On SQLite the
        constant is the Julian day of the Unix epoch times factor: callers only take
        differences of this, or pass the constant back in (see `recency_weight`).
        """
        if self.pg:
            return func.date_part(literal_column("'epoch'"), col) * (factor / 86400.0)
        return func.julianday(col) * factor

    def epoch_offset(self, factor: float) -> float:
        """The constant `epoch_days_scaled` adds: 0 on PostgreSQL, the Julian day of the Unix
        epoch times factor on SQLite."""
        return 0.0 if self.pg else _UNIX_EPOCH_JULIAN_DAY * factor

    def recency_weight(self, col, as_of: datetime, half_life_days: float):
        """0.5 ** ((as_of - col) / half_life) per row, as exp(col * k - b): one multiply, one
        subtraction and one exp (k = ln 2 / half_life, per day; b = as_of * k)."""
        k = math.log(2.0) / float(half_life_days)
        b = (utc(as_of).timestamp() / 86400.0) * k + self.epoch_offset(k)
        return func.exp(self.epoch_days_scaled(col, k) - b)

    def month(self, col):
        """ "YYYY-MM" of a date column."""
        return func.to_char(col, "YYYY-MM") if self.pg else func.substr(col, 1, 7)

    def month_group(self, col):
        """(GROUP BY expression, its "YYYY-MM" label) for grouping many rows by month.

        On PostgreSQL date_trunc is far cheaper per row than to_char (about 0.1 s over a
        million rows); the label is formatted once per group. Constants are literal SQL so that
        the label's date_trunc is the very expression grouped by. SQLite stores dates as
        "YYYY-MM-DD" text: the month is its first seven characters.
        """
        if not self.pg:
            month = func.substr(col, literal_column("1"), literal_column("7"))
            return month, month
        key = func.date_trunc(literal_column("'month'"), cast(col, DateTime()))
        return key, func.to_char(key, literal_column("'YYYY-MM'"))

    def percentile(self, col, q: float, where):
        if self.pg:
            return func.percentile_cont(q).within_group(col).filter(where)
        # FILTER, not CASE: SQLite then never calls the Python step for the other rows.
        return func.tr_percentile(col, q).filter(where)


def dialect_of(conn) -> Dialect:
    return Dialect(pg=conn.dialect.name == "postgresql")


def _at(value: datetime):
    return literal(utc(value), DateTime(timezone=True))


def overdue(as_of: datetime):
    """A pending row whose deadline has passed at `as_of`: read as a miss settled then."""
    return and_(C.c.outcome == PENDING, C.c.settle_at <= _at(as_of))


def promises(where):
    """The rows of the figures: promises (not unpromised or linked wins) matching `where`."""
    return and_(where, C.c.promised_date.is_not(None), C.c.outcome.in_(PROMISE_OUTCOMES))


_COUNTED = ("early", "on_time", "late", "missed", "dropped", "descoped", "pending")
_COUNT_FIELD = {
    "early": "delivered_early",
    "on_time": "delivered_on_time",
    "late": "delivered_late",
    "missed": "missed",
    "dropped": "dropped",
    "descoped": "descoped",
    "pending": "pending",
}


def sums(
    conn,
    *,
    owner,
    where,
    groups: dict,
    as_of: datetime,
    until: datetime,
    full_scan: bool = False,
) -> list[dict]:
    """One dict per (owner, *groups): outcome counts (overdue pending rows counted as missed),
    excluded rows, small wins, and the owner's first promise and first kept delivery up to
    `until`, split over the groups (the trust evidence is the settlement pass's).

    `groups` maps a field name to an expression, or to (GROUP BY expression, label expression).
    Plain counts only, so PostgreSQL hash-aggregates them as it does the floor. `full_scan`:
    the statement reads the whole table (see `_owner_key`).
    """
    live = C.c.excluded == false()
    as_of_lit, until_lit = _at(as_of), _at(until)
    settled = C.c.settle_at <= as_of_lit
    group_by, labels = [_owner_key(conn, owner, full_scan)], [owner.label("owner")]
    for name, expr in groups.items():
        key, label = expr if isinstance(expr, tuple) else (expr, expr)
        group_by.append(key)
        labels.append(label.label(name))

    def count(*conditions):
        return func.count().filter(and_(live, *conditions))

    stmt = (
        select(
            *labels,
            func.count().filter(C.c.excluded == true()).label("excluded"),
            *(count(C.c.outcome == o).label(_COUNT_FIELD[o]) for o in _COUNTED),
            count(C.c.outcome == PENDING, settled).label("overdue"),
            count(C.c.outcome.in_(DELIVERED), C.c.small == true()).label("small_wins"),
            func.min(C.c.promised_at)
            .filter(and_(live, C.c.promised_at <= until_lit))
            .label("first_promise"),
            func.min(C.c.delivered_at)
            .filter(and_(live, C.c.outcome.in_(KEPT), C.c.delivered_at <= until_lit))
            .label("first_kept"),
        )
        .where(promises(where))
        .group_by(*group_by)
    )
    rows = []
    for row in conn.execute(stmt):
        found = dict(row._mapping)
        late = found.pop("overdue")
        found["missed"] += late
        found["pending"] -= late
        rows.append(found)
    return rows


def _owner_key(conn, owner, full_scan: bool):
    """The owner's GROUP BY key. For a statement over the whole table on SQLite, `+team`: the
    unary plus keeps the column from matching an index, so SQLite reads the table in its own
    order and sorts the groups. Otherwise it walks ix_commitments_team_promised for the team
    order and looks every row up from the index, which costs more than the sort it saves (about
    0.15 s over a million rows for the percentiles)."""
    if full_scan and conn.dialect.name == "sqlite":
        return UnaryExpression(owner, operator=custom_op("+"))
    return owner


def percentiles(
    conn, *, owner, where, groups: dict, lead_time: bool = True, full_scan: bool = False
) -> list[dict]:
    """Slip median and p90 over the late rows (and, with `lead_time`, the lead-time median over
    the delivered ones), one dict per (owner, *groups) that has any.

    A statement of its own, because an ordered-set aggregate (percentile_cont) forces PostgreSQL
    to sort every row of its GROUP BY; this one reads only the rows it needs.
    """
    d = dialect_of(conn)
    prepare(conn)
    live = C.c.excluded == false()
    late = C.c.outcome == "late"
    columns = [
        d.percentile(C.c.slip_days, 0.5, late).label("slip_days_median"),
        d.percentile(C.c.slip_days, 0.9, late).label("slip_days_p90"),
    ]
    needed = and_(late, C.c.slip_days.is_not(None))
    if lead_time:
        lead = d.epoch_days(C.c.delivered_at) - d.epoch_days(C.c.promised_at)
        timed = and_(C.c.promised_at.is_not(None), C.c.delivered_at.is_not(None))
        columns.append(d.percentile(lead, 0.5, timed).label("lead_time_days_median"))
        needed = or_(needed, and_(C.c.outcome.in_(DELIVERED), timed))
    group_by, labels = [_owner_key(conn, owner, full_scan)], [owner.label("owner")]
    for name, expr in groups.items():
        key, label = expr if isinstance(expr, tuple) else (expr, expr)
        group_by.append(key)
        labels.append(label.label(name))
    stmt = select(*labels, *columns).where(promises(where), live, needed).group_by(*group_by)
    return [dict(row._mapping) for row in conn.execute(stmt)]


def bucket_aggregates(
    conn,
    *,
    owner,
    where,
    bucket,
    as_of: datetime,
    until: datetime,
    lead_time: bool = True,
    full_scan: bool = False,
) -> list:
    """One row per (owner, bucket): `sums` and `percentiles` together (percentiles None where
    the bucket has no late or delivered rows). `bucket` as a value of `sums`' groups."""
    rows = {
        (r["owner"], r["bucket"]): {
            **r,
            "slip_days_median": None,
            "slip_days_p90": None,
            "lead_time_days_median": None,
        }
        for r in sums(
            conn,
            owner=owner,
            where=where,
            groups={"bucket": bucket},
            as_of=as_of,
            until=until,
            full_scan=full_scan,
        )
    }
    for r in percentiles(
        conn,
        owner=owner,
        where=where,
        groups={"bucket": bucket},
        lead_time=lead_time,
        full_scan=full_scan,
    ):
        rows[(r["owner"], r["bucket"])].update(
            (k, v) for k, v in r.items() if k not in ("owner", "bucket")
        )
    return [SimpleNamespace(**row) for row in rows.values()]


def _sequence(owner, where, *, as_of: datetime, until: datetime):
    """(WHERE, broken) of the settlement pass: the owner's non-excluded kept and broken rows
    settled by `until` (the streaks) or by `as_of` (the trust evidence), whichever is later;
    an overdue pending row (a miss at its deadline) is among the broken."""
    seq = and_(
        where,
        C.c.excluded == false(),
        C.c.settle_at <= _at(max(utc(as_of), utc(until))),
        or_(C.c.outcome.in_(KEPT + BROKEN), overdue(as_of)),
    )
    return seq, case((C.c.outcome.in_(KEPT), 0), else_=1)


@dataclass(frozen=True)
class Settled:
    """What the settlement-order pass finds for one owner."""

    current: int  # streak_current
    longest: int  # streak_longest
    w_kept: float  # recency-weighted kept promises settled by as_of (trust evidence)
    w_broken: float  # the same for broken ones


def settlement_pass(
    conn, *, owner, where, as_of: datetime, until: datetime, half_life_days: float
) -> dict[str, Settled]:
    """{owner: Settled}: the run of kept promises in settlement order up to `until`, and the
    recency-weighted trust evidence (kept and broken rows settled by `as_of`), in one pass over
    the owner's kept and broken rows.

    Settlement order is (settle_at, item_id), as ledger.metrics.settlement_order. A team's rows
    are read in that order from ix_commitments_team_settle (an index-only scan), so they are not
    sorted. PostgreSQL aggregates them with string_agg(... ORDER BY ...); SQLite walks them with
    the tr_streak aggregate, falling back to window functions if the order is ever not the
    index's, or for a client, whose rows have no such index.
    """
    d = dialect_of(conn)
    seq, broken = _sequence(owner, where, as_of=as_of, until=until)
    in_streak = C.c.settle_at <= _at(until)
    evidence = C.c.settle_at <= _at(as_of)
    weight = d.recency_weight(C.c.settle_at, as_of, half_life_days)
    if d.pg:
        return _string_streaks(conn, owner, seq, in_streak, weight=weight, evidence=evidence)
    if owner is C.c.team:
        prepare(conn)
        stmt = (
            select(
                owner,
                func.tr_streak(
                    broken,
                    in_streak,
                    C.c.settle_at,
                    C.c.item_id,
                    case((evidence, weight), else_=null()),
                ),
            )
            .where(seq)
            .group_by(owner)
        )
        found = dict(conn.execute(stmt).all())
        if all(v is not None for v in found.values()):
            return {name: _Streak.parse(v) for name, v in found.items()}
    runs = _window_streaks(conn, owner, and_(seq, in_streak), broken)
    weights = select(
        owner,
        func.sum(weight).filter(and_(evidence, broken == 0)),
        func.sum(weight).filter(and_(evidence, broken == 1)),
    ).where(seq)
    return {
        name: Settled(*runs.get(name, (0, 0)), kept or 0.0, lost or 0.0)
        for name, kept, lost in conn.execute(weights.group_by(owner))
    }


def _string_streaks(conn, owner, seq, in_streak, *, weight, evidence) -> dict[str, Settled]:
    """PostgreSQL: each owner's sequence as a string, one character per row in settlement
    order ('0' kept, '1' broken: string_agg(... ORDER BY settle_at, item_id), an ordered
    aggregate, so the order is guaranteed). The current streak is the number of trailing '0's,
    the longest the longest run of '0's between '1's. Over a million rows this costs about half
    the window functions of `_window_streaks` (which need two window passes).
    """
    kept = C.c.outcome.in_(KEPT)
    mark = case((kept, literal_column("'0'")), else_=literal_column("'1'"))
    order = (C.c.settle_at, C.c.item_id)
    seqs = (
        select(
            owner.label("owner"),
            func.string_agg(mark, aggregate_order_by(literal_column("''"), *order))
            .filter(in_streak)
            .label("s"),
            func.sum(weight).filter(and_(evidence, kept)).label("w_kept"),
            func.sum(weight).filter(and_(evidence, ~kept)).label("w_broken"),
        )
        .where(seq)
        .group_by(owner)
        .subquery()
    )
    runs = (
        func.unnest(func.string_to_array(seqs.c.s, literal_column("'1'")))
        .table_valued("run")
        .render_derived()
    )
    longest = select(func.coalesce(func.max(func.length(runs.c.run)), 0)).scalar_subquery()
    trailing = func.length(seqs.c.s) - func.length(func.rtrim(seqs.c.s, literal_column("'0'")))
    current = func.coalesce(trailing, 0)
    stmt = select(seqs.c.owner, current, longest, seqs.c.w_kept, seqs.c.w_broken)
    return {
        name: Settled(int(cur), int(best), w_kept or 0.0, w_broken or 0.0)
        for name, cur, best, w_kept, w_broken in conn.execute(stmt)
    }


def _window_streaks(conn, owner, seq, broken) -> dict[str, tuple[int, int]]:
    """Streaks with window functions, one pass in settlement order.

    k = kept rows so far (a running sum); `last` marks each owner's last row (lead() is NULL).
    Keeping only the broken rows and the last one, the kept rows between a broken row and the
    previous one are k - lag(k): the run it ended. The longest streak is the largest of those
    (the last row's counting too, the run still going); the current one is the last row's if
    that row was kept, else 0. Both window functions of the first pass share one window, and
    the second pass keeps its order, so the rows are sorted at most once (not at all when
    they come in index order).
    """
    rows = select(owner.label("owner"), C.c.settle_at, C.c.item_id, broken.label("broken")).where(
        seq
    )
    r = rows.subquery()
    order = (r.c.settle_at, r.c.item_id)
    frame = {"partition_by": r.c.owner, "order_by": order, "rows": (None, 0)}
    x = select(
        r.c.owner,
        r.c.settle_at,
        r.c.item_id,
        r.c.broken,
        func.sum(1 - r.c.broken).over(**frame).label("k"),
        func.lead(r.c.item_id).over(**frame).is_(None).label("last"),
    ).subquery()
    previous = func.lag(x.c.k).over(partition_by=x.c.owner, order_by=(x.c.settle_at, x.c.item_id))
    y = (
        select(
            x.c.owner,
            x.c.broken,
            x.c.last,
            (x.c.k - func.coalesce(previous, 0)).label("gap"),
        )
        .where(or_(x.c.broken == 1, x.c.last))
        .subquery()
    )
    current = case((and_(y.c.last, y.c.broken == 0), y.c.gap), else_=0)
    stmt = select(y.c.owner, func.max(current), func.max(y.c.gap)).group_by(y.c.owner)
    return {name: (int(cur), int(longest)) for name, cur, longest in conn.execute(stmt)}


def last_settlement(conn, *, team: str, as_of: datetime):
    """(settle_at, item_id) of the team's last non-excluded kept or broken row settled by
    `as_of`, or None: one step down ix_commitments_team_settle."""
    seq, _ = _sequence(C.c.team, C.c.team == team, as_of=as_of, until=as_of)
    return conn.execute(
        select(C.c.settle_at, C.c.item_id)
        .where(seq)
        .order_by(C.c.settle_at.desc(), C.c.item_id.desc())
        .limit(1)
    ).first()
