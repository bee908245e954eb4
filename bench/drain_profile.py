"""Where a drained delivery's time goes: the worker's batch code in this process, no RQ.

    .venv/bin/python -m bench.drain_profile [--engine sqlite] [--n 500] [--one-by-one]
        [--profile cumulative|tottime]

n deliveries stored through the intake (bench/deliveries.py, as bench/drain.py stores them),
then applied as a worker's batch applies the deliveries it takes (`Batch.together` in chunks of
`workers.jobs.TOGETHER`, in arrival order; `Batch.one` each with --one-by-one), after one to
warm up. Prints ms and CPU ms per delivery, SQL statements per delivery by kind with the wall
ms spent in each (driver and server), and with --profile the cProfile table.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
import uuid
from collections import Counter

from sqlalchemy import event, select

from bench import deliveries
from trackrecord.db import dispose_all
from trackrecord.models import Delivery


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite", choices=["sqlite", "postgresql"])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--one-by-one", action="store_true", help="Batch.one for each delivery")
    ap.add_argument("--profile", choices=["cumulative", "tottime"])
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    redis = deliveries.redis_url()
    url = deliveries.fresh_database(args.engine, "profile")
    try:
        env = deliveries.environment(url, redis, f"profile-{uuid.uuid4().hex[:6]}")
        deliveries.store(env, args.n)
        os.environ.update(env)
        _run(args)
    finally:
        dispose_all()
        deliveries.drop_database(url)
        deliveries.release_redis(redis)


def _run(args) -> None:
    from workers import context
    from workers.jobs import TOGETHER, Batch

    Session = context.sessions()
    statements: Counter[str] = Counter()

    spent: Counter[str] = Counter()  # wall seconds from the cursor's execute to its return

    @event.listens_for(Session.kw["bind"], "before_cursor_execute")
    def _count(conn, cursor, statement, *rest):
        statements[" ".join(statement.split())[:90]] += 1
        conn.info["started"] = time.perf_counter()

    @event.listens_for(Session.kw["bind"], "after_cursor_execute")
    def _spent(conn, cursor, statement, *rest):
        spent[" ".join(statement.split())[:90]] += time.perf_counter() - conn.info["started"]

    with Session() as s:
        rows = s.scalars(select(Delivery).order_by(Delivery.id)).all()
    batch = Batch(Session)
    batch.one(rows[0].id, rows[0])  # warm up: statements compiled, caches filled
    rows, statements = rows[1:], Counter()
    spent.clear()
    step = 1 if args.one_by_one else TOGETHER
    profile = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    if args.profile:
        profile.enable()
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        if step == 1:
            batch.one(chunk[0].id, chunk[0])
        else:
            assert batch.together(chunk)[1]
    profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(rows)
    print(
        f"{args.engine}, {'one by one' if step == 1 else f'{step} to a transaction'}: "
        f"{n} deliveries in {wall:.2f} s = {n / wall:.0f}/s; per delivery {wall / n * 1000:.2f} ms"
        f", CPU {cpu / n * 1000:.2f} ms, {sum(statements.values()) / n:.1f} statements"
    )
    print("  per delivery: statements, ms in the statement (driver and server)")
    for text, count in statements.most_common():
        print(f"  {count / n:5.2f}  {spent[text] / n * 1000:6.3f}  {text}")
    if args.profile:
        pstats.Stats(profile).sort_stats(args.profile).print_stats(args.top)


if __name__ == "__main__":
    main()
