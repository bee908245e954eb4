"""The drain (issue 11): one job takes the deliveries queued behind its own and applies them in
one transaction. Exactly once and in event-time order with workers racing, nothing lost when
a worker is killed mid-batch, and a delivery that keeps failing still ends as its own job in
RQ's failed registry. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry
from sqlalchemy import func, select, text

from ledger.tables import Commitment, Item, ItemEvent
from tests.helpers import github_headers, json_of
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from trackrecord.queue import ALONE_PREFIX, WORKER_STALE_SECONDS
from workers.relay import relay_pending
from workers.runner import TrackrecordWorker

MILESTONED = json_of("github/issues.milestoned.json")  # due 2019-05-23, Codertocat/Hello-World


def milestoned(number: int) -> dict:
    doc = copy.deepcopy(MILESTONED)
    doc["issue"]["number"] = number
    doc["issue"]["id"] = 5_000_000 + number
    return doc


def closed(number: int) -> dict:
    """The same issue closed before its milestone's due date, after it was milestoned."""
    doc = milestoned(number)
    doc["action"] = "closed"
    doc.pop("milestone", None)
    doc["issue"].update(state="closed", closed_at="2019-05-20T10:00:00Z")
    doc["issue"]["updated_at"] = "2019-05-20T10:00:00Z"
    return doc


def post(client, doc: dict, delivery: str) -> None:
    body = json.dumps(doc).encode()
    resp = client.post(
        "/webhooks/github", data=body, headers=github_headers("issues", body, delivery)
    )
    assert resp.status_code == 202 and resp.json["status"] == "queued", resp.json


def spawn_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--burst"],
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def burst(settings, redis_conn) -> None:
    queue = Queue(settings.queue_name, connection=redis_conn)
    TrackrecordWorker([queue], connection=redis_conn).work(burst=True)


def ledger(settings) -> dict:
    with session_factory(settings.database_url)() as s:
        return {
            "deliveries": dict(
                s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
            ),
            "attempts": sorted(set(s.scalars(select(Delivery.attempts)))),
            "items": s.scalar(select(func.count()).select_from(Item)),
            "commitments": s.scalar(select(func.count()).select_from(Commitment)),
            # Each stored event once: a delivery applied twice would not add rows (the events'
            # unique key), so count what each item holds against what was sent.
            "events": s.scalar(select(func.count()).select_from(ItemEvent)),
            "outcomes": dict(
                s.execute(
                    select(Item.key, Commitment.outcome).join(
                        Commitment, Commitment.item_id == Item.id
                    )
                ).all()
            ),
        }


def test_one_job_drains_the_deliveries_queued_behind_it(client, settings, redis_conn):
    for n in range(1, 41):
        post(client, milestoned(n), f"batch-{n}")
    queue = Queue(settings.queue_name, connection=redis_conn)
    assert queue.count == 40

    burst(settings, redis_conn)

    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 40} and seen["attempts"] == [1]
    assert seen["items"] == seen["commitments"] == 40
    # Far fewer jobs ran than deliveries: the first took the 39 behind it off the queue.
    assert FinishedJobRegistry(queue=queue).count == 1
    assert queue.count == 0


def test_two_workers_racing_apply_each_delivery_once_in_event_time_order(
    client, settings, redis_conn
):
    # Two deliveries per issue; for odd issues the close arrives before the milestone it
    # settles. Whatever the arrival order and whichever worker takes which, each issue ends
    # the same: promised by the milestone, delivered before its due date.
    for n in range(1, 61):
        first, second = (closed(n), milestoned(n)) if n % 2 else (milestoned(n), closed(n))
        post(client, first, f"race-{n}-a")
        post(client, second, f"race-{n}-b")
    workers = [spawn_worker(), spawn_worker()]
    for worker in workers:
        assert worker.wait(180) == 0

    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 120} and seen["attempts"] == [1]
    assert seen["items"] == seen["commitments"] == 60
    assert len(set(seen["outcomes"].values())) == 1, seen["outcomes"]
    [outcome] = set(seen["outcomes"].values())
    assert outcome != "pending"
    # Processing every delivery again changes nothing: each was claimed once.
    events = seen["events"]
    relay_pending(min_age_seconds=0)
    burst(settings, redis_conn)
    assert ledger(settings)["events"] == events


def test_worker_killed_mid_batch_loses_nothing(client, settings, redis_conn):
    for n in range(1, 21):
        post(client, milestoned(n), f"kill-{n}")
    Session = session_factory(settings.database_url)
    with Session() as s:
        ids = list(s.scalars(select(Delivery.id).order_by(Delivery.id)))
    queue = Queue(settings.queue_name, connection=redis_conn)
    postgres = settings.database_url.startswith("postgresql")

    # Hold the 10th delivery's row: on PostgreSQL the first job applies its own delivery,
    # takes the 19 behind it off the queue and waits on that row in the middle of their claim
    # (on SQLite, one writer, it waits at its own claim already).
    blocker = Session()
    blocker.execute(text("UPDATE deliveries SET attempts = attempts WHERE id = :i"), {"i": ids[9]})
    worker = spawn_worker()
    try:
        deadline = time.monotonic() + 60
        while not (
            Job.fetch(f"delivery-{ids[0]}", connection=redis_conn).get_status() == JobStatus.STARTED
            and (queue.count == 0 or not postgres)
        ):
            assert time.monotonic() < deadline, "the worker never got into the batch"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    killed_at = time.monotonic()
    blocker.rollback()
    blocker.close()
    # Nothing half-applied: each delivery is processed with its ledger rows, or not at all.
    seen = ledger(settings)
    done = seen["deliveries"].get("processed", 0)
    assert seen["commitments"] == done and done + seen["deliveries"]["queued"] == 20
    if postgres:
        # The job's own delivery, committed before it took the others; the 19 it took are of
        # one milestone, so one transaction (workers.delivery_apply.plan), held by the row.
        assert done == 1

    # Relay puts every unfinished delivery back, the killed job's own and those it took off the
    # queue (marked started by it), once the worker has missed its heartbeats.
    with Session() as s:
        unfinished = {
            f"delivery-{i}"
            for i in s.scalars(select(Delivery.id).where(Delivery.status == "queued"))
        }
    relayed = unfinished - set(queue.job_ids)  # the others still wait on the queue
    while True:
        relay_pending(min_age_seconds=0)
        if set(queue.job_ids) >= unfinished:
            break
        assert time.monotonic() - killed_at < WORKER_STALE_SECONDS + 10, queue.job_ids
        time.sleep(1)

    burst(settings, redis_conn)
    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 20}
    assert seen["items"] == seen["commitments"] == 20
    with Session() as s:
        attempts = dict(s.execute(select(Delivery.delivery_id, Delivery.attempts)).all())
    # Relayed once each, and only what was unfinished and not waiting on the queue.
    by_row = {f"delivery-{ids[int(d.split('-')[1]) - 1]}": a for d, a in attempts.items()}
    assert {j for j, a in by_row.items() if a == 2} == relayed
    assert set(attempts.values()) <= {1, 2}


def test_a_delivery_that_keeps_failing_runs_alone_and_lands_in_the_failed_registry(
    client, settings, redis_conn
):
    for n in range(1, 6):
        post(client, milestoned(n), f"poison-{n}")
    Session = session_factory(settings.database_url)
    with Session() as s, s.begin():
        bad = s.scalars(select(Delivery.id).order_by(Delivery.id)).all()[2]
        # A stored body that no longer decodes: a fault every attempt meets again.
        s.execute(text("UPDATE deliveries SET body = :b WHERE id = :i"), {"b": b"{", "i": bad})
    queue = Queue(settings.queue_name, connection=redis_conn)

    burst(settings, redis_conn)  # the batch applies the others and sends the bad one back
    with Session() as s:
        statuses = dict(s.execute(select(Delivery.id, Delivery.status)).all())
    assert [k for k, v in statuses.items() if v != "processed"] == [bad]
    assert redis_conn.exists(ALONE_PREFIX + f"delivery-{bad}")

    # Alone, it fails as its own job: RQ retries it (the test does not wait for the
    # intervals), then it lands in the failed registry and the row is marked failed.
    scheduled = ScheduledJobRegistry(queue=queue)
    for _ in range(10):
        if FailedJobRegistry(queue=queue).get_job_ids():
            break
        for job_id in scheduled.get_job_ids():
            scheduled.remove(job_id)
            queue.enqueue_job(Job.fetch(job_id, connection=redis_conn))
        burst(settings, redis_conn)
    assert FailedJobRegistry(queue=queue).get_job_ids() == [f"delivery-{bad}"]
    with Session() as s:
        row = s.get(Delivery, bad)
        assert row.status == "failed" and "PayloadError" in row.error
    assert ledger(settings)["commitments"] == 4


def test_one_bad_delivery_in_a_shared_transaction_loses_and_doubles_nothing(
    client, settings, redis_conn
):
    # On SQLite the deliveries a job takes are applied many to a transaction (Batch.together).
    # A payload the connector refuses, in the middle of them, rolls that transaction back:
    # the others are applied again one by one, each once, and the bad one is marked invalid.
    for n in range(1, 31):
        doc = milestoned(n)
        if n == 12:
            doc["issue"]["created_at"] = "last tuesday"
        post(client, doc, f"shared-{n}")
    queue = Queue(settings.queue_name, connection=redis_conn)

    burst(settings, redis_conn)

    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 29, "failed": 1}, seen["deliveries"]
    assert seen["items"] == seen["commitments"] == 29
    with session_factory(settings.database_url)() as s:
        row = s.scalars(select(Delivery).where(Delivery.delivery_id == "shared-12")).one()
        assert row.status == "failed" and row.error.startswith("invalid payload: issue.created_at")
    assert FinishedJobRegistry(queue=queue).count == 1 and queue.count == 0
    events = seen["events"]
    relay_pending(min_age_seconds=0)
    burst(settings, redis_conn)
    assert ledger(settings)["events"] == events


def test_a_shared_transaction_that_fails_commits_none_of_its_deliveries(client, settings):
    from workers import context
    from workers.jobs import Batch

    for n in range(1, 6):
        doc = milestoned(n)
        if n == 4:
            doc["issue"]["number"] = "four"
        post(client, doc, f"together-{n}")
    Session = context.sessions()
    with Session() as s:
        rows = s.scalars(select(Delivery).order_by(Delivery.id)).all()
    batch = Batch(Session)
    assert batch.together(rows) == (rows, False)
    seen = ledger(settings)
    assert seen["deliveries"] == {"queued": 5} and seen["items"] == seen["events"] == 0
    assert batch.posts == batch.summaries == []

    good = [r for r in rows if r.delivery_id != "together-4"]
    assert batch.together(good) == (good, True)
    assert batch.together(good) == (good, True)  # again: each is claimed already, nothing changes
    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 4, "queued": 1}
    assert seen["items"] == seen["commitments"] == 4
