"""Full recompute of every team's monthly figures against the floor, on both engines.

    .venv/bin/python -m bench.bench_recompute [--engine postgresql|sqlite|both] [--rounds 3]

Full recompute: `bench.recompute.recompute` on the 1M-row ledger, every team and month, all the
figures (counts, ratios, slip median and p90 per team-month, small wins, streaks, time to
first win, recency-weighted trust score). The floor: one plain `GROUP BY team, month` of the
on-time rate over the same table. Both run alternately in the same process, `--rounds` times,
and the medians are compared. Target: full recompute within 3x the floor.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import text

from bench.common import median, url
from bench.generate import AS_OF
from bench.recompute import recompute
from trackrecord.db import get_engine

FLOOR = {
    "postgresql": "to_char(promised_date, 'YYYY-MM')",
    "sqlite": "strftime('%Y-%m', promised_date)",
}
FLOOR_SQL = """
SELECT team, {month} AS month,
       1.0 * sum(CASE WHEN outcome IN ('early', 'on_time') THEN 1 ELSE 0 END)
       / nullif(sum(CASE WHEN outcome IN ('early', 'on_time', 'late', 'missed', 'dropped')
                    THEN 1 ELSE 0 END), 0) AS on_time_rate
FROM commitments
GROUP BY team, {month}
"""


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run(engine: str, rounds: int) -> dict:
    db = get_engine(url(engine, "1m"))
    floor_sql = text(FLOOR_SQL.format(month=FLOOR[engine]))
    floors, fulls = [], []
    with db.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM commitments")).scalar_one()
        for _ in range(rounds):
            seconds, floor_rows = timed(lambda: conn.execute(floor_sql).all())
            floors.append(seconds)
            seconds, result = timed(lambda: recompute(conn, as_of=AS_OF))
            fulls.append(seconds)
            conn.rollback()  # ends recompute's SET LOCAL work_mem: the floor runs as configured
    months = sum(len(team["months"]) for team in result.values())
    return {
        "engine": engine,
        "rows": rows,
        "teams": len(result),
        "team_months": months,
        "floor_groups": len(floor_rows),
        "floor": median(floors),
        "full": median(fulls),
        "floors": floors,
        "fulls": fulls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    engines = ("postgresql", "sqlite") if args.engine == "both" else (args.engine,)
    for engine in engines:
        r = run(engine, args.rounds)
        ratio = r["full"] / r["floor"]
        print(
            f"{engine:10} {r['rows']} rows, {r['teams']} teams, {r['team_months']} team-months: "
            f"floor {r['floor']:.2f} s, full recompute {r['full']:.2f} s, ratio {ratio:.2f} "
            f"[{'met' if ratio <= 3 else 'MISSED'}: within 3x] "
            f"(rounds: floor {', '.join(f'{s:.2f}' for s in r['floors'])}; "
            f"full {', '.join(f'{s:.2f}' for s in r['fulls'])})"
        )


if __name__ == "__main__":
    main()
