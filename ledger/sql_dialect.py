"""Where PostgreSQL and SQLite differ for the figures' SQL, each difference in one place.

The statements (`ledger.sql_figures`) are SQLAlchemy core, the same on both engines, except:
- percentiles: PostgreSQL's percentile_cont; on SQLite an aggregate registered on the connection
  that calls `percentile` below, so both are linear interpolation (type 7);
- times: PostgreSQL's date_part('epoch'); SQLite stores text and has julianday();
- the recency weight 0.5 ** (age / half_life), as exp() on both (SQLite's math functions, or a
  registered deterministic function where the library was built without them);
- months: date_trunc / to_char on PostgreSQL, the first seven characters of SQLite's text;
- settlement order: PostgreSQL has an ordered aggregate (string_agg ... ORDER BY); SQLite's
  aggregates take rows in the order the planner hands them, so `SettlementWalk` (registered as
  `tr_settlement`) checks that order as it goes (see ledger.sql_figures.settlement_pass).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column

from ledger.codec import utc

_UNIX_EPOCH_JULIAN_DAY = 2440587.5


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (Hyndman-Fan type 7).

    Numpy's default and PostgreSQL's percentile_cont: position (n - 1) * q in the sorted
    values, interpolated between its neighbours. docs/metrics.md, "Slip".
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


class _Percentile:
    """SQLite aggregate tr_percentile(value, q): `percentile` over the group's values."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.q = 0.5

    def step(self, value, q) -> None:
        if value is not None:
            self.values.append(value)
        self.q = q

    def finalize(self):
        return percentile(self.values, self.q)


class SettlementWalk:
    """One owner's kept and broken rows in settlement order: their marks ('0' kept, '1' broken,
    for the rows `in_streak`) and the trust evidence (the weights of the rows whose weight is
    not NULL, summed by kept and broken).

    Registered on SQLite as the aggregate tr_settlement(kept, in_streak, settle_at, item_id,
    weight) -> "w_kept w_broken marks". It checks that (settle_at, item_id) never goes back, and
    answers NULL when it does: SQLite does not promise to hand a group's rows over in index
    order, so the caller then walks an ordered SELECT through `step` itself.
    """

    __slots__ = ("marks", "w_kept", "w_broken", "settled", "item_id", "ordered")

    def __init__(self) -> None:
        self.marks: list[str] = []
        self.w_kept = self.w_broken = 0.0
        self.settled, self.item_id = "", -1  # SQLite hands settle_at over as text
        self.ordered = True

    def step(self, kept, in_streak, settled, item_id, weight) -> None:
        # About a million calls in a full recompute: plain comparisons, no tuples.
        if settled <= self.settled and (settled < self.settled or item_id <= self.item_id):
            self.ordered = False
        self.settled, self.item_id = settled, item_id
        if in_streak:
            self.marks.append("0" if kept else "1")
        if weight is not None:
            if kept:
                self.w_kept += weight
            else:
                self.w_broken += weight

    def finalize(self) -> str | None:
        if not self.ordered:
            return None
        return f"{self.w_kept!r} {self.w_broken!r} {''.join(self.marks)}"

    @staticmethod
    def parse(text: str) -> tuple[float, float, str]:
        w_kept, w_broken, marks = text.split(" ", 2)
        return float(w_kept), float(w_broken), marks


def _sqlite_has_exp() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT exp(1.0)")
        return True
    except sqlite3.OperationalError:
        return False


_SQLITE_HAS_EXP = _sqlite_has_exp()


def prepare(conn) -> None:
    """Register the SQLite functions on this connection (cheap; a no-op on PostgreSQL)."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    raw.create_aggregate("tr_percentile", 2, _Percentile)
    raw.create_aggregate("tr_settlement", 5, SettlementWalk)
    if not _SQLITE_HAS_EXP:
        raw.create_function("exp", 1, math.exp, deterministic=True)


@dataclass(frozen=True)
class Dialect:
    pg: bool

    def epoch_days(self, col):
        """Days since 1970-01-01 UTC, fractional (plus a constant on SQLite: take differences)."""
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
        subtraction and one exp (k = ln 2 / half_life, per day; b = as_of * k). The same weight
        as ledger.trust.recency_weight."""
        k = math.log(2.0) / float(half_life_days)
        b = (utc(as_of).timestamp() / 86400.0) * k + self.epoch_offset(k)
        return func.exp(self.epoch_days_scaled(col, k) - b)

    def month(self, col):
        """ "YYYY-MM" of a date column."""
        return func.to_char(col, "YYYY-MM") if self.pg else func.substr(col, 1, 7)

    def percentile(self, col, q: float, where):
        if self.pg:
            return func.percentile_cont(q).within_group(col).filter(where)
        # FILTER, not CASE: SQLite then never calls the Python step for the other rows.
        return func.tr_percentile(col, q).filter(where)


def dialect_of(conn) -> Dialect:
    return Dialect(pg=conn.dialect.name == "postgresql")
