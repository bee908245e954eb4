"""The fault tests under load (tests/test_faults_load.py, test_rolling_restart.py): senders
that post signed deliveries concurrently and retry as GitHub redelivers, and the checks every
one of those tests ends with, of the ledger and of RQ's registries. The processes they run
are in tests.fault_procs."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from redis import Redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from ledger.tables import Commitment, Item, ItemEvent, PromiseChangeRow
from tests.helpers import github_headers
from tests.test_drain import closed, milestoned
from trackrecord.db import session_factory
from trackrecord.models import Delivery

RETRY_SECONDS = 0.1  # between a sender's attempts at one delivery (GitHub waits longer)


class Senders:
    """`threads` senders, each posting items of its own: the milestone, then the close (for
    every other item the close first, so the ledger must order them by event time). A refused
    delivery (non-2xx, or no connection) is sent again under the same delivery id, to the next
    server, until it is acknowledged, as GitHub's redelivery and a load balancer would."""

    def __init__(self, urls: list[str], prefix: str, threads: int = 4, pace: float = 0.05):
        self.urls, self.prefix, self.pace = urls, prefix, pace
        self.acked: dict[str, str] = {}  # delivery id -> the status acknowledged
        self.items: list[int] = []  # issue numbers whose two deliveries were both acked
        self.refused: Counter = Counter()  # what the attempts that did not land met
        self.gave_up: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._abort = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def start(self) -> Senders:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, count: int, seconds: float = 60) -> None:
        """Until `count` more deliveries than now are acknowledged."""
        target = len(self.acked) + count
        deadline = time.monotonic() + seconds
        while len(self.acked) < target:
            assert time.monotonic() < deadline, (len(self.acked), target, self.refused)
            assert not self.gave_up, self.gave_up
            time.sleep(0.05)

    def stop(self, seconds: float = 60) -> None:
        """Each sender finishes the item in hand (both deliveries acknowledged) and stops."""
        self._stop.set()
        for thread in self._threads:
            thread.join(seconds)
            assert not thread.is_alive(), "a sender never got its delivery acknowledged"
        assert not self.gave_up, self.gave_up

    def abort(self) -> None:
        """At the end of a failed test: stop at once, acknowledged or not."""
        self._abort.set()
        self._stop.set()

    def _run(self, index: int) -> None:
        session = requests.Session()
        attempt = itertools.count(index)
        while not self._stop.is_set():
            number = next(self._numbers)
            docs = [milestoned(number), closed(number)]
            if number % 2:
                docs.reverse()
            for kind, doc in zip("ab", docs, strict=True):
                if not self._send(session, attempt, f"{self.prefix}-{number}-{kind}", doc):
                    return
            with self._lock:
                self.items.append(number)
            time.sleep(self.pace)

    def _send(self, session, attempt, delivery: str, doc: dict) -> bool:
        body = json.dumps(doc).encode()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not self._abort.is_set():
            url = self.urls[next(attempt) % len(self.urls)]
            try:
                resp = session.post(
                    f"{url}/webhooks/github",
                    data=body,
                    headers=github_headers("issues", body, delivery),
                    timeout=10,
                )
            except requests.RequestException as exc:  # the pool drops that connection
                outcome = type(exc).__name__
            else:
                if 200 <= resp.status_code < 300:
                    with self._lock:
                        self.acked[delivery] = resp.json()["status"]
                    return True
                outcome = resp.status_code
            with self._lock:
                self.refused[outcome] += 1
            time.sleep(RETRY_SECONDS)
        self.gave_up.append(delivery)
        return False


def processed_lines(logs: list[Path]) -> Counter:
    """Row id -> how many `delivery.processed` lines the workers logged for it."""
    seen: Counter = Counter()
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if '"delivery.processed"' in line:
                seen[json.loads(line)["row"]] += 1
    return seen


def wait_drained(database_url: str, count: int, seconds: float, relay: bool = False) -> None:
    """Until `count` deliveries are processed; with `relay`, relaying every second meanwhile,
    as the scheduler does (every RELAY_EVERY_SECONDS)."""
    from workers.relay import relay_pending

    Session = session_factory(database_url)
    deadline = time.monotonic() + seconds
    while True:
        with Session() as s:
            done = s.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status == "processed")
            )
            if done >= count:
                return
            left = dict(
                s.execute(
                    select(Delivery.status, func.count())
                    .where(Delivery.status != "processed")
                    .group_by(Delivery.status)
                ).all()
            )
        assert time.monotonic() < deadline, f"{done} of {count} processed; left {left}"
        if relay:
            relay_pending(min_age_seconds=0)
        time.sleep(1)


def check_ledger(
    database_url: str, senders: Senders, logs: list[Path], *, all_logged: bool = True
) -> None:
    """Every acknowledged delivery is stored once and processed once, and the ledger holds each
    item once with both its deliveries applied: nothing lost, nothing doubled. Not
    `all_logged`: a worker SIGKILLed, or the database cut off during a commit, may have
    committed a delivery it never logged (its next run then finds it claimed already)."""
    with session_factory(database_url)() as s:
        rows = dict(s.execute(select(Delivery.delivery_id, Delivery.id)).all())
        statuses = Counter(s.scalars(select(Delivery.status)))
        items = s.scalar(select(func.count()).select_from(Item))
        commitments = Counter(s.scalars(select(Commitment.outcome)))
        per_item = Counter(
            s.execute(
                select(
                    select(func.count())
                    .where(ItemEvent.item_id == Item.id)
                    .scalar_subquery()
                    .label("events"),
                    select(func.count())
                    .where(PromiseChangeRow.item_id == Item.id)
                    .scalar_subquery()
                    .label("promises"),
                ).select_from(Item)
            ).all()
        )
    assert set(rows) == set(senders.acked), "a stored delivery was never acknowledged, or lost"
    assert statuses == {"processed": len(rows)}, statuses
    assert len(senders.acked) == 2 * len(senders.items)
    # One item and one commitment per issue, and each item ended the same way, with the same
    # events: both of its deliveries were applied, in event-time order whatever their arrival.
    assert items == len(senders.items) and sum(commitments.values()) == items
    assert len(commitments) == 1 and "pending" not in commitments, commitments
    assert len(per_item) == 1, per_item
    # Each processed once: the claim let exactly one run apply it.
    lines = processed_lines(logs)
    assert max(lines.values()) == 1, [r for r, n in lines.items() if n > 1]
    if all_logged:
        assert set(lines) == set(rows.values())


def check_redis(
    redis: Redis, queue: Queue, gone: list[str], waiting: int = 0, killed: str | None = None
) -> None:
    """RQ's registries clean: `waiting` jobs on the queue, none failed for good or left
    `started`; the workers that stopped are not listed, and no job says one of them runs it.

    A worker `killed` may have left its own job in the started registry, its delivery applied
    before the kill: relay has nothing to put back, and RQ's registry clean-up runs it again
    once the entry expires, to find its delivery claimed already."""
    assert queue.count == waiting
    started = StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
    # (and the hashes of the jobs it had taken and applied, not yet dropped: they expire)
    of_killed = set(started_by(redis, [killed])) if killed else set()
    assert {f"rq:job:{j}" for j in started} <= of_killed and len(started) <= 1, started
    assert FailedJobRegistry(queue=queue).get_job_ids() == []
    assert queue.intermediate_queue.get_job_ids() == []
    assert not {w.name for w in Worker.all(connection=redis, queue=queue)} & set(gone)
    assert started_by(redis, gone) == []


def started_by(redis: Redis, workers: list[str]) -> list[str]:
    """Jobs whose hash says `started` by one of `workers` (RQ's or a batch's mark)."""
    keys = list(redis.scan_iter(match="rq:job:delivery-*", count=1000))
    with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, "status", "worker_name")
        found = pipe.execute()
    names = {name.encode() for name in workers}
    return [k.decode() for k, (status, name) in zip(keys, found, strict=True)
            if status == b"started" and name in names]  # fmt: skip


def busy(redis: Redis, worker: str) -> bool:
    """RQ says the worker is running a job."""
    return redis.hget(Worker.redis_worker_namespace_prefix + worker, "state") == b"busy"
