"""The full recompute the benchmarks measure: every team's figures for every month of the history,
from the statements the record itself runs (ledger.sql_figures), over the whole table.

Not used by the service, which computes one owner's record per request (ledger.record); kept here
as what bench_recompute.py times against its floor and what bench/rollup.py starts from. What
only a whole-table pass needs is here too: months grouped by date_trunc on PostgreSQL (cheaper
per row than to_char), a larger work_mem for the percentiles' sort, and SQLite reading the table
in its own order (`GROUP BY +team`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import DateTime, cast, func, literal_column, text, true
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from ledger import sql_figures
from ledger.codec import utc
from ledger.reading import C, owner_filter
from ledger.sql_dialect import dialect_of
from ledger.trust import DEFAULT_HALF_LIFE_DAYS, beta_reputation

RECOMPUTE_WORK_MEM = "64MB"
_DAY = timedelta(days=1)
_PERCENTILES = ("slip_days_median", "slip_days_p90")


def month_group(conn):
    """(GROUP BY expression, its "YYYY-MM" label) of the promised date, for many rows.

    On PostgreSQL date_trunc is far cheaper per row than to_char (about 0.1 s over a million
    rows); the label is formatted once per group. Constants are literal SQL so that the label's
    date_trunc is the very expression grouped by. SQLite stores dates as "YYYY-MM-DD" text: the
    month is its first seven characters.
    """
    col = C.c.promised_date
    if not dialect_of(conn).pg:
        month = func.substr(col, literal_column("1"), literal_column("7"))
        return month, month
    key = func.date_trunc(literal_column("'month'"), cast(col, DateTime()))
    return key, func.to_char(key, literal_column("'YYYY-MM'"))


def team_key(conn, full_scan: bool):
    """The team as GROUP BY key. Over the whole table on SQLite, `+team`: the unary plus keeps
    the column from matching an index, so SQLite reads the table in its own order and sorts the
    groups. Otherwise it walks ix_commitments_team_promised for the team order and looks every
    row up from the index, which costs more than the sort it saves (about 0.15 s over a million
    rows for the percentiles)."""
    if full_scan and conn.dialect.name == "sqlite":
        return UnaryExpression(C.c.team, operator=custom_op("+")), C.c.team
    return C.c.team


def month_rows(conn, *, where, bucket, as_of: datetime, until: datetime, full_scan=False):
    """One dict per (team, bucket): `counts` and the slip percentiles (None where the bucket has
    no late rows). `bucket` as a value of `counts`' groups."""
    owner = team_key(conn, full_scan)
    common = {"owner": owner, "where": where, "groups": {"bucket": bucket}}
    rows = {
        (r["owner"], r["bucket"]): {**r, **dict.fromkeys(_PERCENTILES)}
        for r in sql_figures.counts(conn, as_of=as_of, until=until, **common)
    }
    for r in sql_figures.percentiles(conn, lead_time=False, **common):
        rows[(r["owner"], r["bucket"])].update((k, r[k]) for k in _PERCENTILES)
    return list(rows.values())


def month_figures(row: dict) -> dict:
    counted = sql_figures.counts_of(row)
    extra = {f: None if row[f] is None else float(row[f]) for f in _PERCENTILES}
    return {
        **counted,
        **sql_figures.ratios(counted),
        **extra,
        "small_wins": int(row["small_wins"] or 0),
    }


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
    """
    full_scan = teams is None
    where = true() if full_scan else owner_filter(teams=list(teams))
    if dialect_of(conn).pg and full_scan:
        # At PostgreSQL's default 4 MB the percentiles' sort of the late rows spills to disk
        # (external merge); 64 MB keeps it in memory. SET LOCAL: this transaction only.
        conn.execute(text(f"SET LOCAL work_mem = '{RECOMPUTE_WORK_MEM}'"))
    rows = month_rows(
        conn, where=where, bucket=month_group(conn), as_of=as_of, until=as_of, full_scan=full_scan
    )
    runs = sql_figures.settlement_pass(
        conn, owner=C.c.team, where=where, as_of=as_of, until=as_of, half_life_days=half_life_days
    )
    by_team: dict[str, list] = {}
    for r in rows:
        by_team.setdefault(r["owner"], []).append(r)
    result = {}
    for team, team_rows in by_team.items():
        promised = [utc(r["first_promise"]) for r in team_rows if r["first_promise"]]
        kept = [utc(r["first_kept"]) for r in team_rows if r["first_kept"]]
        settled = runs.get(team, sql_figures.NOTHING_SETTLED)
        result[team] = {
            "months": {
                r["bucket"]: month_figures(r) for r in sorted(team_rows, key=lambda r: r["bucket"])
            },
            "streak_current": settled.current,
            "streak_longest": settled.longest,
            "first_win_days": (min(kept) - min(promised)) / _DAY if promised and kept else None,
            "trust_score": beta_reputation(settled.w_kept, settled.w_broken).as_dict(),
            "evidence": {"kept": settled.w_kept, "broken": settled.w_broken},
        }
    return result
