"""Webhook intake cost against its baseline, in one run: a bare Flask endpoint that reads the
body and answers 202 (the floor for any Flask view) vs POST /webhooks/github (verify the
signature, store the raw delivery, enqueue on RQ, answer).

    .venv/bin/python bench/bench_intake.py [--n 2000] [--database-url URL] [--redis-url URL]

Both run in-process through Flask's test client, so the figures are the application's own
cost without the network or gunicorn. Prints p50/p99 per request and the ratio of medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from flask import Flask, request
from redis import Redis

from trackrecord import migrate
from trackrecord.config import Settings, load_config
from webhook_app import create_app
from webhook_app.signatures import sign

FIXTURE = Path(__file__).parent.parent / "tests/fixtures/github/issues.opened.json"
SECRET = "bench-secret"
CONFIG = """
[[clients]]
name = "bench"
[[clients.teams]]
name = "bench"
github = ["Codertocat/Hello-World"]
"""


def timed(client, path: str, body: bytes, headers_for, n: int) -> list[float]:
    out = []
    for _ in range(n):
        headers = headers_for()
        t0 = time.perf_counter()
        resp = client.post(path, data=body, headers=headers)
        out.append(time.perf_counter() - t0)
        assert resp.status_code == 202, resp.get_data(as_text=True)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--database-url", help="default: a fresh SQLite file; give an empty database")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp())
    (tmp / "c.toml").write_text(CONFIG)
    db = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(db)
    import os

    os.environ["GITHUB_WEBHOOK_SECRET"] = SECRET
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        database_url=db,
        redis_url=args.redis_url,
        config=load_config(tmp / "c.toml"),
        queue_name=queue,
    )
    app = create_app(settings)
    body = FIXTURE.read_bytes()
    signature = sign(SECRET, body)

    def gh_headers():
        return {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        }

    bare = Flask("bare")

    @bare.post("/hook")
    def hook():
        request.get_data()
        return {"status": "queued"}, 202

    # Interleave rounds so that drift on a noisy machine hits both sides alike.
    base_t, intake_t = [], []
    rounds = 10
    for _ in range(rounds):
        base_t += timed(bare.test_client(), "/hook", body, gh_headers, args.n // rounds)
        intake_t += timed(app.test_client(), "/webhooks/github", body, gh_headers, args.n // rounds)
    Redis.from_url(args.redis_url).delete(f"rq:queue:{queue}")

    print(f"engine: {db.split(':', 1)[0]}  requests per side: {len(intake_t)}  body: {len(body)} B")
    for name, xs in (("bare Flask endpoint", base_t), ("POST /webhooks/github", intake_t)):
        print(
            f"{name:24} p50 {pct(xs, 0.5):7.3f} ms  p99 {pct(xs, 0.99):7.3f} ms  "
            f"{len(xs) / sum(xs):8.0f} req/s"
        )
    ratio = statistics.median(intake_t) / statistics.median(base_t)
    print(f"intake / bare (median): {ratio:.1f}x")


if __name__ == "__main__":
    main()
