"""Where an intake request's time goes, in this process: the deliveries bench/load.py sends,
posted through Flask's test client (no network, no gunicorn), timed and then profiled.

    .venv/bin/python -m bench.profile_intake [--n 500] [--engines sqlite,postgresql] [--top 30]

Needs what bench/load.py needs (Redis on 127.0.0.1:6379, PostgreSQL for that engine). Prints
the time per request without the profiler, then cProfile's top functions by own time and by
cumulative time (the profiler's own cost inflates small calls: compare rows, not totals).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
import uuid

from bench import deliveries
from trackrecord.db import dispose_all


def _post_all(client, bodies, n: int) -> None:
    for i in range(n):
        body = bodies[i % len(bodies)]
        resp = client.post("/webhooks/github", data=body, headers=deliveries.headers(body))
        assert resp.status_code == 202, resp.get_json()


def run(engine: str, n: int, top: int, redis: str) -> None:
    from webhook_app import create_app

    url = deliveries.fresh_database(engine, "profile")
    env = deliveries.environment(url, redis, f"profile-{uuid.uuid4().hex[:6]}")
    os.environ["GITHUB_WEBHOOK_SECRET"] = deliveries.SECRET
    try:
        client = create_app(deliveries.settings_of(env)).test_client()
        bodies = [deliveries.issue_body(k) for k in range(1, 51)]
        _post_all(client, bodies, 50)  # warm-up
        t0 = time.perf_counter()
        _post_all(client, bodies, n)
        took = time.perf_counter() - t0
        print(f"\n== {engine}: {took / n * 1000:.2f} ms per request over {n} (no profiler)")
        profile = cProfile.Profile()
        profile.enable()
        _post_all(client, bodies, n)
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    finally:
        dispose_all()
        deliveries.drop_database(url)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    redis = deliveries.redis_url()
    try:
        for engine in [e for e in args.engines.split(",") if e]:
            run(engine, args.n, args.top, redis)
    finally:
        deliveries.release_redis(redis)


if __name__ == "__main__":
    main()
