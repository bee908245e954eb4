"""Incremental update after one delivery event vs a full recompute of that team.

    .venv/bin/python -m bench.bench_incremental [--engine postgresql|sqlite|both] [--events 200]

On the 1M-row ledger, team-000's figures are built once (`bench.rollup.build`). Then each
event delivers one of the team's open promises (the ledger row is updated as the store would),
and `bench.rollup.apply_delivery` brings the figures up to date: that call is what is timed.
After every event a full recompute of the team (`bench.recompute.recompute(teams=[team])`) is
timed too, in the same run. Everything runs in one transaction that is rolled back, so the
ledger is unchanged afterwards. At the end the rolled-up figures must equal a fresh build.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bench import rollup
from bench.common import ms, url
from bench.generate import AS_OF
from bench.recompute import recompute
from ledger.tables import Commitment
from trackrecord.db import get_engine

TEAM = "team-000"
C = Commitment.__table__


def run(engine: str, events: int) -> dict:
    db = get_engine(url(engine, "1m"))
    with db.connect() as conn, conn.begin() as tx:
        state = rollup.build(conn, team=TEAM, as_of=AS_OF)
        open_rows = (
            conn.execute(
                select(C.c.item_id)
                .where(C.c.team == TEAM, C.c.outcome == "pending", C.c.deadline > AS_OF)
                .order_by(C.c.item_id)
                .limit(events)
            )
            .scalars()
            .all()
        )
        incremental, full = [], []
        for i, item_id in enumerate(open_rows):
            when = AS_OF + timedelta(minutes=i + 1)
            conn.execute(
                update(C)
                .where(C.c.item_id == item_id)
                .values(
                    outcome="early",
                    settled_at=when,
                    delivered_at=when,
                    settle_at=when,  # as ledger.store writes it (ledger.tables.settle_instant)
                    slip_days=-1,
                )
            )
            started = time.perf_counter()
            state = rollup.apply_delivery(
                conn, state, item_id=item_id, previous_outcome="pending", as_of=when
            )
            incremental.append(time.perf_counter() - started)
            started = time.perf_counter()
            recompute(conn, as_of=when, teams=[TEAM])
            full.append(time.perf_counter() - started)
        fresh = rollup.build(conn, team=TEAM, as_of=when)
        assert state.figures["months"] == fresh.figures["months"]
        assert state.figures["trust_score"] == pytest.approx(fresh.figures["trust_score"])
        assert state.figures["streak_current"] == fresh.figures["streak_current"]
        tx.rollback()
    return {
        "engine": engine,
        "events": len(incremental),
        "fallbacks": state.fallbacks,
        "incremental": ms(incremental),
        "full": ms(full),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    engines = ("postgresql", "sqlite") if args.engine == "both" else (args.engine,)
    for engine in engines:
        r = run(engine, args.events)
        inc, full = r["incremental"], r["full"]
        print(
            f"{engine:10} {r['events']} delivery events of {TEAM} ({r['fallbacks']} fell back): "
            f"incremental p50 {inc['p50']:.2f} ms p99 {inc['p99']:.2f} ms | "
            f"team recompute p50 {full['p50']:.2f} ms p99 {full['p99']:.2f} ms | "
            f"ratio p50 {inc['p50'] / full['p50']:.2f} p99 {inc['p99'] / full['p99']:.2f}"
        )


if __name__ == "__main__":
    main()
