"""Scale, not size: one team's 12-month record in a 10,000- and a 1,000,000-row ledger.

    .venv/bin/python -m bench.bench_record [--engine postgresql|sqlite|both] [--n 300]

The API path itself (GET /api/v1/teams/team-000/track-record through Flask's test client, admin
token, JSON answer), so the figure is what a caller waits for minus the network. team-000 holds
the same 5,000 rows in both ledgers (bench/generate.py --focus-rows 5000); only the other teams'
rows differ (5,000 vs 995,000). Requests alternate between the two ledgers in one run, so
machine noise hits both alike. Targets: p50 and p99 ratios (1M / 10k) at most 1.5; p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import ADMIN_TOKEN, ms, settings, url
from trackrecord.db import dispose_all
from webhook_app import create_app

PATH = "/api/v1/teams/team-000/track-record?from=2024-01-01&to=2024-12-31"


def run(engine: str, n: int) -> dict:
    os.environ["TRACKRECORD_ADMIN_TOKEN"] = ADMIN_TOKEN
    clients = {
        size: create_app(settings(url(engine, size))).test_client() for size in ("10k", "1m")
    }
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    times: dict[str, list[float]] = {"10k": [], "1m": []}
    bodies = {}
    for i in range(n + 20):
        for size, client in clients.items():
            started = time.perf_counter()
            answer = client.get(PATH, headers=headers)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200, answer.get_json()
            if i >= 20:  # warm-up: connection pools, caches, imports
                times[size].append(elapsed)
            bodies[size] = answer.get_json()
    assert bodies["10k"]["commitments_due"] == bodies["1m"]["commitments_due"]
    small, large = ms(times["10k"]), ms(times["1m"])
    dispose_all()
    return {
        "engine": engine,
        "rows_of_team": bodies["1m"]["commitments_due"],
        "10k": small,
        "1m": large,
        "ratio_p50": large["p50"] / small["p50"],
        "ratio_p99": large["p99"] / small["p99"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--n", type=int, default=300, help="requests per ledger")
    args = parser.parse_args()
    engines = ("postgresql", "sqlite") if args.engine == "both" else (args.engine,)
    for engine in engines:
        r = run(engine, args.n)
        ok = r["ratio_p50"] <= 1.5 and r["ratio_p99"] <= 1.5 and r["1m"]["p99"] < 50
        print(
            f"{engine:10} team-000 12-month record ({r['rows_of_team']} due), {args.n} requests: "
            f"10k p50 {r['10k']['p50']:.1f} ms p99 {r['10k']['p99']:.1f} ms | "
            f"1M p50 {r['1m']['p50']:.1f} ms p99 {r['1m']['p99']:.1f} ms | "
            f"ratio p50 {r['ratio_p50']:.2f} p99 {r['ratio_p99']:.2f} "
            f"[{'met' if ok else 'MISSED'}: ratio <= 1.5, p99 < 50 ms]"
        )


if __name__ == "__main__":
    main()
