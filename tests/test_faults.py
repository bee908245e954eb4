"""Faults lose nothing and duplicate nothing: Redis down, Redis restarted empty, database down,
a worker killed in the middle of a job (relayed within WORKER_STALE_SECONDS of the kill)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import port_for
from click.testing import CliRunner
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select, text

from cli.main import main as cli
from tests.helpers import fixture_bytes, github_headers, jira_headers
from trackrecord.config import Settings
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from trackrecord.queue import WORKER_HEARTBEAT_SECONDS, WORKER_STALE_SECONDS
from webhook_app import create_app
from workers.relay import relay_pending
from workers.runner import TrackrecordWorker

PAYLOADS = [
    ("github", "issues", "github/issues.opened.json"),
    ("github", "issues", "github/issues.milestoned.json"),
    ("github", "pull_request", "github/pull_request.closed.merged.json"),
    ("jira", None, "jira/jira.issue_updated.resolved.json"),
    ("jira", None, "jira/jira.issue_created.many_fields.json"),
]


def post_all(client) -> list:
    answers = []
    for i, (source, event, name) in enumerate(PAYLOADS):
        body = fixture_bytes(name)
        if source == "github":
            headers = github_headers(event, body, delivery=f"fault-{i}")
            answers.append(client.post("/webhooks/github", data=body, headers=headers))
        else:
            headers = jira_headers(body, delivery=f"fault-{i}")
            answers.append(client.post("/webhooks/jira", data=body, headers=headers))
    return answers


def statuses(url) -> list[tuple[str, int]]:
    with session_factory(url)() as s:
        return list(s.execute(select(Delivery.status, Delivery.attempts).order_by(Delivery.id)))


def burst(url: str, queue_name: str, with_scheduler: bool = False) -> None:
    conn = Redis.from_url(url)
    worker = TrackrecordWorker([Queue(queue_name, connection=conn)], connection=conn)
    worker.work(burst=True, with_scheduler=with_scheduler)


def test_redis_down_deliveries_are_kept_then_relayed(own_redis):
    settings = Settings.from_env()
    client = create_app(settings).test_client()
    own_redis.stop()

    answers = post_all(client)
    assert [a.status_code for a in answers] == [202] * len(PAYLOADS)
    assert {a.json["status"] for a in answers} == {"pending"}
    assert statuses(settings.database_url) == [("pending", 0)] * len(PAYLOADS)

    own_redis.start()
    result = CliRunner().invoke(cli, ["relay"])
    assert result.exit_code == 0, result.output
    assert '"enqueued": 5' in result.output
    burst(own_redis.url, settings.queue_name)
    assert statuses(settings.database_url) == [("processed", 1)] * len(PAYLOADS)

    # Relay again: nothing left to do, nothing done twice.
    again = CliRunner().invoke(cli, ["relay"])
    assert '"enqueued": 0' in again.output


def test_redis_restarted_without_persistence_loses_no_delivery(own_redis):
    settings = Settings.from_env()
    client = create_app(settings).test_client()
    answers = post_all(client)
    assert {a.json["status"] for a in answers} == {"queued"}
    assert Queue(settings.queue_name, connection=Redis.from_url(own_redis.url)).count == 5

    own_redis.stop()
    own_redis.start()  # nothing on disk: the queue is gone
    assert Queue(settings.queue_name, connection=Redis.from_url(own_redis.url)).count == 0

    result = CliRunner().invoke(cli, ["relay"])
    assert '"enqueued": 5' in result.output, result.output
    burst(own_redis.url, settings.queue_name)
    assert statuses(settings.database_url) == [("processed", 2)] * len(PAYLOADS)


def test_live_jobs_are_not_relayed_twice(client, settings, redis_conn):
    post_all(client)
    result = CliRunner().invoke(cli, ["relay"])
    assert '"enqueued": 0' in result.output and '"live": 5' in result.output
    assert Queue(settings.queue_name, connection=redis_conn).count == 5


def test_database_down_answers_503_and_enqueues_nothing(settings, redis_conn):
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{port_for.select_random()}/nothing"
    app = create_app(Settings(**{**settings.__dict__, "database_url": dead}))
    body = fixture_bytes("github/issues.opened.json")
    resp = app.test_client().post(
        "/webhooks/github", data=body, headers=github_headers("issues", body)
    )
    assert resp.status_code == 503
    assert resp.json["error"] == "database_unavailable"
    assert Queue(settings.queue_name, connection=redis_conn).count == 0
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json["failing"] == ["database"]


def test_readyz_names_redis_when_it_is_down(settings):
    dead = f"redis://127.0.0.1:{port_for.select_random()}/0"
    app = create_app(Settings(**{**settings.__dict__, "redis_url": dead}))
    ready = app.test_client().get("/readyz")
    assert (ready.status_code, ready.json["failing"]) == (503, ["redis"])
    assert app.test_client().get("/healthz").status_code == 200


def test_readyz_ok_when_both_answer(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json["checks"] == {"database": "ok", "redis": "ok"}


def kill_worker(worker: subprocess.Popen) -> None:
    """SIGKILL an RQ worker and its work horse, as a lost machine or the OOM killer taking
    both would. RQ puts the horse in a process group of its own, so it is killed apart."""
    horses = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    os.killpg(worker.pid, signal.SIGKILL)
    for horse in horses:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(horse), signal.SIGKILL)
    worker.wait(10)


def test_worker_killed_mid_job_is_relayed_once_and_processed_once(client, settings, redis_conn):
    body = fixture_bytes("github/issues.closed.json")
    resp = client.post("/webhooks/github", data=body, headers=github_headers("issues", body, "k1"))
    assert resp.status_code == 202
    Session = session_factory(settings.database_url)
    row_id = Session().scalar(select(Delivery.id))
    job_id = f"delivery-{row_id}"

    # Hold the delivery's row so the job blocks inside its transaction, then kill the worker.
    blocker = Session()
    blocker.execute(text("UPDATE deliveries SET attempts = attempts WHERE id = :i"), {"i": row_id})
    worker = subprocess.Popen(
        [sys.executable, "-m", "cli", "worker"],
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while Job.fetch(job_id, connection=redis_conn).get_status() != JobStatus.STARTED:
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.1)
    finally:
        kill_worker(worker)
    killed_at = time.monotonic()
    blocker.rollback()
    blocker.close()
    assert statuses(settings.database_url) == [("queued", 1)]  # nothing half-applied

    # Right after the kill the job still looks like one being run: its worker beat moments ago.
    assert relay_pending(min_age_seconds=0) == {"enqueued": 0, "live": 1, "gave_up": 0}
    # Relay (the scheduler runs it every minute) gives the job up once its worker has missed
    # its heartbeats for WORKER_STALE_SECONDS, and enqueues it again under the same id. RQ's
    # own clean-up would wait for the worker's key to expire, then for a maintenance run.
    while True:
        result = relay_pending(min_age_seconds=0)
        if result["enqueued"]:
            break
        assert time.monotonic() - killed_at < WORKER_STALE_SECONDS + 5, result
        time.sleep(1)
    assert time.monotonic() - killed_at >= WORKER_STALE_SECONDS - WORKER_HEARTBEAT_SECONDS - 1
    assert result == {"enqueued": 1, "live": 0, "gave_up": 0}
    queue = Queue(settings.queue_name, connection=redis_conn)
    assert queue.job_ids == [job_id]
    assert not StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
    # Exactly once: the next relay finds it queued.
    assert relay_pending(min_age_seconds=0) == {"enqueued": 0, "live": 1, "gave_up": 0}

    burst(settings.redis_url, settings.queue_name)
    assert statuses(settings.database_url) == [("processed", 2)]
    job = Job.fetch(job_id, connection=redis_conn)
    assert [r.return_value for r in job.results()] == ["processed"]  # one run, not two
    # RQ's registry clean-up, whenever it comes, finds no abandoned run of it left to retry.
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 3600)
    assert queue.count == 0 and job.get_status() == JobStatus.FINISHED
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 1
        assert s.scalar(select(Delivery.error)) is None
