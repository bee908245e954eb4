"""Intake under load: signed, real-shaped 8 KB `issues` deliveries with fresh ids, sent at a
set concurrency to `trackrecord serve`, against the floor measured in the same run; then the
drain, and a check that every acknowledged delivery reached the ledger exactly once.

    .venv/bin/python -m bench.load [--n 3000] [--concurrency 16] [--engines sqlite,postgresql]
                                   [--worker-classes gevent] [--rounds 3] [--max-seconds 120]

The floor: bench/floor_app.py (a bare Flask endpoint that checks the HMAC and answers 202)
under gunicorn with sync workers, as many processes as `trackrecord serve` runs by default.
Each engine and worker class runs its rounds alternated with the floor's, so load on this
shared machine hits both alike. Every request opens its own connection, as a webhook sender
does. The senders are client processes on the same machine (they take CPU from the server:
the same for both sides). Prints req/s and p50 / p99 per side and the ratios.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

from redis import Redis
from sqlalchemy import select

from bench import deliveries
from bench.common import percentile
from trackrecord.db import dispose_all, session_factory
from trackrecord.models import Delivery

REDIS = ""  # the run's own Redis db, claimed in main()
SERVE_WORKERS = 2  # `trackrecord serve --workers` default (cli/processes.py)
BODIES = 200  # distinct issues cycled through; every request has a fresh delivery id
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} never answered")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _sender(args: tuple) -> list[tuple[float, int, str]]:
    """One client process: `threads` threads sending `count` requests between them."""
    port, bodies, count, threads, seconds = args
    out: list[tuple[float, int, str]] = []
    lock = threading.Lock()
    left = [count]
    deadline = time.monotonic() + seconds

    def run() -> None:
        i = 0
        while time.monotonic() < deadline:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            body, signature = bodies[i % len(bodies)]
            i += 1
            delivery = str(uuid.uuid4())
            headers = {
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": signature,
                "Content-Type": "application/json",
                "Connection": "close",
            }
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/webhooks/github", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                conn.close()
            except OSError:
                status = 0
            with lock:
                out.append((time.perf_counter() - t0, status, delivery))

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return out


def fire(pool, port: int, bodies, n: int, concurrency: int, seconds: float):
    """n requests at `concurrency` from two client processes; (elapsed, results)."""
    procs = 2 if concurrency >= 2 else 1
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    threads = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    t0 = time.perf_counter()
    parts = pool.map(_sender, [(port, bodies, share[i], threads[i], seconds) for i in range(procs)])
    return time.perf_counter() - t0, [r for part in parts for r in part]


class Side:
    def __init__(self, label: str):
        self.label = label
        self.elapsed = 0.0
        self.results: list[tuple[float, int, str]] = []

    def add(self, elapsed: float, results) -> None:
        self.elapsed += elapsed
        self.results += results

    def rate(self) -> float:
        return len(self.results) / self.elapsed if self.elapsed else 0.0

    def ms(self, q: float) -> float:
        return percentile([r[0] * 1000 for r in self.results], q)

    def line(self) -> str:
        codes = Counter(r[1] for r in self.results)
        return (
            f"{self.label:40} {self.rate():7.0f} req/s  p50 {self.ms(0.5):6.1f} ms  "
            f"p99 {self.ms(0.99):6.1f} ms  answers {dict(sorted(codes.items()))}"
        )


def run_engine(engine: str, classes: list[str], args, pool, bodies) -> list[tuple[Side, Side]]:
    url = deliveries.fresh_database(engine, "load")
    env = deliveries.environment(url, REDIS, f"load-{uuid.uuid4().hex[:6]}")
    floor_port = _free_port()
    floor = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(SERVE_WORKERS), "-k", "sync",
         "-b", f"127.0.0.1:{floor_port}", "bench.floor_app:app"],
        cwd=ROOT, env={**env, "FLOOR_SECRET": deliveries.SECRET},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pairs = []
    try:
        _wait_for_floor(floor_port, floor)
        for worker_class in classes:
            port = _free_port()
            serve = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--port", str(port),
                 "--worker-class", worker_class],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                _wait_ready(port, serve)
                fire(pool, port, bodies, 100, args.concurrency, 30)  # warm-up (stored too)
                fire(pool, floor_port, bodies, 100, args.concurrency, 30)
                base = Side(f"floor (Flask + HMAC, sync x{SERVE_WORKERS})")
                side = Side(f"trackrecord serve ({worker_class}, {engine})")
                per_round = max(1, args.n // args.rounds)
                for _ in range(args.rounds):
                    base.add(*fire(pool, floor_port, bodies, per_round, args.concurrency,
                                   args.max_seconds))  # fmt: skip
                    side.add(*fire(pool, port, bodies, per_round, args.concurrency,
                                   args.max_seconds))  # fmt: skip
                pairs.append((base, side))
                print(base.line(), flush=True)
                print(side.line(), flush=True)
            finally:
                _stop(serve)
        acknowledged = _acknowledged(pairs)
        print(_drain_and_check(env, url, acknowledged, args.max_seconds), flush=True)
    finally:
        _stop(floor)
        Redis.from_url(REDIS).delete(f"rq:queue:{env['TRACKRECORD_QUEUE']}")
        dispose_all()
        deliveries.drop_database(url)
    return pairs


def _wait_for_floor(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the floor's gunicorn exited") from None
            time.sleep(0.2)
    raise RuntimeError("the floor never listened")


def _acknowledged(pairs) -> set[str]:
    return {d for _base, side in pairs for (_t, status, d) in side.results if status == 202}


def _drain_and_check(env, url: str, acknowledged: set[str], max_seconds: float) -> str:
    t0 = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--burst"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        worker.wait(max_seconds * 5)
    except subprocess.TimeoutExpired:
        _stop(worker)
    took = time.perf_counter() - t0
    with session_factory(url)() as s:
        rows = s.execute(select(Delivery.delivery_id, Delivery.status)).all()
    by_id = Counter(d for d, _status in rows)
    processed = {d for d, status in rows if status == "processed"}
    missing = acknowledged - processed
    doubled = [d for d, count in by_id.items() if count > 1]
    verdict = "OK" if not missing and not doubled else "WRONG"
    return (
        f"drain: {len(rows)} stored, {len(processed)} processed in {took:.1f} s; "
        f"{len(acknowledged)} acknowledged with 202: {len(missing)} not processed, "
        f"{len(doubled)} stored twice -> {verdict}"
    )


def main() -> None:
    global REDIS
    REDIS = deliveries.redis_url()
    try:
        _main()
    finally:
        deliveries.release_redis(REDIS)


def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000, help="requests per side and worker class")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="alternations with the floor")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--worker-classes", default="gevent", help="e.g. gevent,sync,gthread")
    ap.add_argument("--max-seconds", type=float, default=120, help="bound on each round")
    args = ap.parse_args()
    bodies = [(b, deliveries.headers(b)["X-Hub-Signature-256"]) for b in _bodies()]
    classes = [c for c in args.worker_classes.split(",") if c]
    summary = []
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for engine in [e for e in args.engines.split(",") if e]:
            for base, side in run_engine(engine, classes, args, pool, bodies):
                summary.append((side.label, side.rate() / base.rate(), side.ms(0.99)))
    print(f"\n{args.concurrency} connections, {len(deliveries.issue_body(1))} B bodies")
    for label, ratio, p99 in summary:
        print(f"{label:40} intake / floor {ratio:.2f}   p99 {p99:.1f} ms")


def _bodies() -> list[bytes]:
    return [deliveries.issue_body(n) for n in range(1, BODIES + 1)]


if __name__ == "__main__":
    main()
