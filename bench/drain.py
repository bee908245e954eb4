"""Drain rate: deliveries a second through `trackrecord worker --burst`, against RQ's own
workers on no-op jobs, in one run.

    .venv/bin/python -m bench.drain [--n 2000] [--engines sqlite,postgresql] [--max-seconds 300]

For each engine: a fresh database, n real-shaped `issues` deliveries stored and queued through
the intake (bench/deliveries.py), then `trackrecord worker --burst` started as an operator
starts it, timed until the ledger holds every one. On PostgreSQL the same again with two
worker processes. The baselines, in the same run: RQ's default forking worker (`rq worker
--burst`) and RQ's SimpleWorker on n no-op jobs. Each run is bounded by --max-seconds: a run
that does not finish is stopped and reported with what it drained.

Two rates per run: `total` from the processes' start (Python start-up and imports included)
and `steady` from the first delivery (or job) done to the last.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import uuid

from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from bench import deliveries
from trackrecord.db import dispose_all, session_factory
from trackrecord.models import Delivery, DeliveryStatus

POLL = 0.05
# After the first delivery done and until the last half second or so, a coarser poll: counting
# the processed rows scans their index, 5 ms at 10,000 on PostgreSQL, which at every 50 ms took
# a tenth of a core from the workers measured. The ends, which set the rates, are still seen
# within 50 ms.
POLL_MIDDLE = 0.25
REDIS = ""  # the run's own Redis db, claimed in main()


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


class Run:
    def __init__(self, label: str, n: int):
        self.label, self.n = label, n
        self.start = self.first = self.end = None
        self.done_at_first = 0
        self.done = 0
        self.ticks = machine_ticks()
        self.busy = None  # fraction of all the cores busy in the steady part
        self.cpu = None  # CPU seconds of the worker processes, start-up included

    def saw(self, done: int) -> None:
        now = time.perf_counter()
        if done and self.first is None:
            self.first, self.done_at_first = now, done
            self.ticks = machine_ticks()
        self.done = done
        if done >= self.n and self.end is None:
            self.end = now
            busy, every = machine_ticks()
            self.busy = (busy - self.ticks[0]) / max(1, every - self.ticks[1])

    def rates(self) -> tuple[float, float]:
        end = self.end or time.perf_counter()
        total = self.done / (end - self.start)
        span = end - (self.first or end)
        steady = (self.done - self.done_at_first) / span if span > 0 else float("nan")
        return total, steady

    def line(self) -> str:
        total, steady = self.rates()
        unfinished = "" if self.end else f"  STOPPED at {self.done}/{self.n}"
        cpu = ""
        if self.busy is not None and self.cpu:
            cpu = f"  cores busy {self.busy:4.0%}, {self.done / self.cpu:5.0f}/CPU-s of the workers"
        return f"{self.label:44} total {total:7.1f}/s  steady {steady:7.1f}/s{cpu}{unfinished}"


def _interval(run: Run) -> float:
    if run.first is None:
        return POLL
    span = time.perf_counter() - run.first
    rate = (run.done - run.done_at_first) / span if span > 0 else 0
    left = (run.n - run.done) / rate if rate > 0 else 0
    return POLL_MIDDLE if left > 2 * POLL_MIDDLE else POLL


def _watch(run: Run, procs: list[subprocess.Popen], count, max_seconds: float) -> Run:
    deadline = run.start + max_seconds
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    while run.end is None and time.perf_counter() < deadline:
        run.saw(count())
        if all(p.poll() is not None for p in procs) and run.end is None:
            run.saw(count())
            break
        time.sleep(_interval(run))
    for p in procs:
        if p.poll() is None:
            p.terminate()
        p.wait(30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return run


def drain_deliveries(engine: str, n: int, workers: int, max_seconds: float, milestones: int) -> Run:
    url = deliveries.fresh_database(engine, "drain")
    env = deliveries.environment(url, REDIS, f"drain-{uuid.uuid4().hex[:6]}")
    try:
        deliveries.store(env, n, milestones=milestones)
        Session = session_factory(url)

        def processed() -> int:
            with Session() as s:
                return s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status == DeliveryStatus.PROCESSED)
                )

        run = Run(f"trackrecord worker --burst x{workers} ({engine})", n)
        run.start = time.perf_counter()
        procs = [
            _spawn([sys.executable, "-m", "cli", "worker", "--burst"], env) for _ in range(workers)
        ]
        _watch(run, procs, processed, max_seconds)
        check = deliveries.ledger_check(url)
        if check.get("processed") != n or check["commitments"] != n or check["items"] != n:
            run.label += f"  LEDGER WRONG {check}"
        Redis.from_url(REDIS).delete(f"rq:queue:{env['TRACKRECORD_QUEUE']}")
        return run
    finally:
        dispose_all()
        deliveries.drop_database(url)


def drain_noop(n: int, forking: bool, max_seconds: float) -> Run:
    redis = Redis.from_url(REDIS)
    name = f"noop-{uuid.uuid4().hex[:6]}"
    queue = Queue(name, connection=redis)
    with redis.pipeline() as pipe:
        for i in range(n):
            queue.enqueue("bench.noop.noop", i, result_ttl=3600, pipeline=pipe)
        pipe.execute()
    kind = "Worker (forks a work horse per job)" if forking else "SimpleWorker"
    run = Run(f"RQ {kind}, no-op jobs", n)
    cls = "rq.worker.Worker" if forking else "rq.worker.SimpleWorker"
    cmd = [sys.executable, "-m", "rq.cli", "worker", "--burst", "-w", cls, "-u", REDIS, name]
    run.start = time.perf_counter()
    procs = [_spawn(cmd, dict(os.environ))]

    def done() -> int:
        from rq.registry import FinishedJobRegistry

        return FinishedJobRegistry(name, connection=redis).count

    _watch(run, procs, done, max_seconds)
    redis.delete(queue.key)
    return run


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
    ap.add_argument("--n", type=int, default=2000, help="deliveries (and no-op jobs) per run")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--max-seconds", type=float, default=300, help="bound on each run")
    ap.add_argument(
        "--milestones", type=int, default=deliveries.MILESTONES, help="spread the issues over"
    )
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e]

    runs: dict[str, Run] = {}
    runs["forking"] = drain_noop(args.n, True, args.max_seconds)
    print(runs["forking"].line(), flush=True)
    runs["simple"] = drain_noop(args.n, False, args.max_seconds)
    print(runs["simple"].line(), flush=True)
    for engine in engines:
        runs[engine] = drain_deliveries(engine, args.n, 1, args.max_seconds, args.milestones)
        print(runs[engine].line(), flush=True)
    if "postgresql" in engines:
        runs["pg2"] = drain_deliveries("postgresql", args.n, 2, args.max_seconds, args.milestones)
        print(runs["pg2"].line(), flush=True)

    fork_total, fork_steady = runs["forking"].rates()
    print(
        f"\ndeliveries: {args.n} signed `issues` deliveries of {len(deliveries.issue_body(1))} B "
        f"into {args.milestones} milestone(s)"
    )
    for engine in engines:
        total, steady = runs[engine].rates()
        print(
            f"{engine:10} trackrecord worker / RQ forking worker on no-op jobs: "
            f"total {total / fork_total:.2f}x, steady {steady / fork_steady:.2f}x; "
            f"goal 500/s: {'met' if steady >= 500 else 'NOT met'} ({steady:.0f}/s steady)"
        )
    if "pg2" in runs:
        one, two = runs["postgresql"].rates()[1], runs["pg2"].rates()[1]
        print(f"postgresql two workers / one (steady): {two / one:.2f}x (goal >= 1.6x)")


if __name__ == "__main__":
    main()
