"""Where an intake request's time goes under gunicorn: `trackrecord serve`'s configuration with
one worker, profiled (cProfile, CPU time as its clock) over requests 300 to 1,300 of the
bench/load.py deliveries sent at 16 connections, then grouped by package (calls and time a
request). The profiler's own cost inflates every call: compare rows and runs, not totals.

    .venv/bin/python -m bench.profile_serve [--engine sqlite] [--worker-class gevent] [--n 1500]

Needs what bench/load.py needs (Redis on 127.0.0.1:6379, PostgreSQL for that engine).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import uuid

from bench import deliveries, load
from trackrecord.db import dispose_all

FIRST, LAST = 300, 1300  # the requests profiled: after warm-up, before the tail


def serve(port: str, worker_class: str, out: str) -> None:
    """The worker process side: serve's gunicorn settings, one worker, a profiler."""
    import cProfile
    import time

    from gunicorn.app.base import BaseApplication

    from cli.common import load_settings
    from cli.processes import ACCESS_LOG_FORMAT, _gunicorn_logger_class

    settings = load_settings()
    profile = cProfile.Profile(time.process_time)
    seen = [0]

    def pre_request(worker, req):
        seen[0] += 1
        if seen[0] == FIRST:
            profile.enable()
        elif seen[0] == LAST:
            profile.disable()
            profile.dump_stats(out)

    class App(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"127.0.0.1:{port}",
                "workers": 1,
                "worker_class": worker_class,
                "accesslog": "-",
                "access_log_format": ACCESS_LOG_FORMAT,
                "logger_class": _gunicorn_logger_class(),
                "pre_request": pre_request,
            }.items():
                self.cfg.set(key, value)

        def load(self):
            from webhook_app import create_app

            return create_app(settings)

    App().run()


def grouped(path: str, requests: int) -> list[str]:
    by_time, by_calls = collections.Counter(), collections.Counter()
    for (file, _line, name), (_cc, calls, own, _cum, _callers) in pstats.Stats(path).stats.items():
        if "site-packages/" in file:
            key = file.split("site-packages/")[1].split("/")[0]
        elif file == "~":
            key = "built-in: " + name[:50]
        elif "/lib/python3" in file:
            key = "stdlib: " + file.rsplit("/", 1)[1]
        else:
            key = os.path.relpath(file, load.ROOT)
        by_time[key] += own
        by_calls[key] += calls
    total = sum(by_calls.values()) / requests
    lines = [f"{total:.0f} calls a request; own time by part (ms a request, profiled):"]
    for key, own in by_time.most_common(30):
        lines.append(
            f"{own / requests * 1000:8.3f} ms {by_calls[key] / requests:7.1f} calls  {key}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="sqlite")
    ap.add_argument("--worker-class", default="gevent")
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--keep", metavar="PATH", help="copy the worker's cProfile file there")
    ap.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # the worker process side
    args = ap.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    load.REDIS = deliveries.redis_url()
    url = deliveries.fresh_database(args.engine, "profile")
    env = deliveries.environment(url, load.REDIS, f"profile-{uuid.uuid4().hex[:6]}")
    out = os.path.join(tempfile.mkdtemp(), "serve.prof")
    port = load._free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.profile_serve", "--serve", str(port), args.worker_class, out],
        cwd=load.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        load._wait_ready(port, server)
        bodies = [(b, deliveries.headers(b)["X-Hub-Signature-256"]) for b in load._bodies()]
        with multiprocessing.get_context("fork").Pool(2) as pool:
            elapsed, results = load.fire(pool, port, bodies, max(args.n, LAST + 10), 16, 300)
        print(f"{len(results) / elapsed:.0f} req/s with one profiled worker ({args.engine})")
        print("\n".join(grouped(out, LAST - FIRST)))
        if args.keep:
            shutil.copyfile(out, args.keep)
    finally:
        load._stop(server)
        dispose_all()
        deliveries.drop_database(url)
        deliveries.release_redis(load.REDIS)


if __name__ == "__main__":
    main()
