"""Faults under concurrent load (issue 11), each ending with the ledger checked for nothing
lost and nothing doubled: Redis stopped and started again empty mid-stream; the database cut
off mid-stream (intake answers 503, the sender's retry lands); a worker killed with SIGKILL in
the middle of a batch while senders send and a replacement worker drains.

Real processes throughout: `trackrecord serve` (gunicorn), `trackrecord worker`, a private
redis-server without persistence, and senders that retry a refused delivery under the same id
as GitHub redelivers it. Relay runs as the scheduler runs it (`wait_drained(relay=True)`)."""

from __future__ import annotations

import time

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy.engine import make_url

from tests.fault_load import check_ledger, check_redis, started_by, wait_drained
from tests.fault_procs import TcpProxy
from trackrecord.queue import WORKER_STALE_SECONDS


def test_redis_restarted_empty_mid_stream_loses_nothing(own_redis, stack, settings):
    redis = Redis.from_url(own_redis.url)
    queue = Queue(settings.queue_name, connection=redis)
    web, worker = stack.web(), stack.worker()
    web.ready(), worker.registered(redis, queue)
    senders = stack.senders([web.url], "redis")
    senders.wait_for(40)

    own_redis.stop()  # the queue, the jobs and the worker's registration are gone
    senders.wait_for(20)  # stored all the same, answered 202 `pending`
    own_redis.start()
    senders.wait_for(30)
    senders.stop()
    assert "pending" in senders.acked.values()

    # Relay puts back what Redis lost (queued rows without a job) and what it never had.
    wait_drained(settings.database_url, len(senders.acked), 90, relay=True)
    assert worker.proc.poll() is None, "the worker did not outlive Redis' restart"
    code, _ = worker.term(30)
    assert code == 0
    check_ledger(settings.database_url, senders, stack.worker_logs)
    check_redis(redis, queue, [worker.name])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_cut_off_mid_stream_answers_503_and_the_retry_lands(
    stack, settings, redis_conn, monkeypatch
):
    """PostgreSQL through a proxy the test cuts: every open connection dropped, new ones
    refused, for two seconds. (SQLite has no such fault short of a lock held longer than its
    30 s busy timeout, gunicorn's own request timeout.)"""
    direct = make_url(settings.database_url)
    proxy = TcpProxy((direct.host, direct.port))
    proxied = direct.set(port=proxy.port).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", proxied)
    queue = Queue(settings.queue_name, connection=redis_conn)
    try:
        web, worker = stack.web(), stack.worker()
        web.ready(), worker.registered(redis_conn, queue)
        senders = stack.senders([web.url], "db")
        senders.wait_for(40)

        proxy.cut()
        deadline = time.monotonic() + 10
        while senders.refused[503] < 10:
            assert time.monotonic() < deadline, senders.refused
            time.sleep(0.05)
        acked = len(senders.acked)
        time.sleep(1)
        # Nothing acknowledged while nothing could be stored.
        assert len(senders.acked) <= acked + 4 * 2  # answers already on their way at the cut
        proxy.restore()
        senders.wait_for(30)
        senders.stop()

        wait_drained(settings.database_url, len(senders.acked), 90, relay=True)
        assert worker.proc.poll() is None
        assert worker.term(30)[0] == 0
    finally:
        stack.close()
        proxy.close()
    check_ledger(str(direct), senders, stack.worker_logs, all_logged=False)
    check_redis(redis_conn, queue, [worker.name])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_worker_killed_mid_batch_under_load_loses_nothing(stack, settings, redis_conn):
    """PostgreSQL only: relay gives a killed worker's jobs up WORKER_STALE_SECONDS after its
    last heartbeat, half a minute a run. (tests/test_drain.py kills one mid-batch on both.)"""
    queue = Queue(settings.queue_name, connection=redis_conn)
    web = stack.web().ready()
    senders = stack.senders([web.url], "kill")
    senders.wait_for(100)  # a backlog, so that the worker's first job takes a batch

    doomed = stack.worker().registered(redis_conn, queue)
    deadline = time.monotonic() + 30
    while len(started_by(redis_conn, [doomed.name])) < 10:
        assert time.monotonic() < deadline, "the worker never took a batch"
        time.sleep(0.02)
    doomed.kill()
    killed_at = time.monotonic()
    replacement = stack.worker()
    senders.wait_for(40)
    senders.stop()

    # The deliveries the killed worker held come back once it has missed its heartbeats.
    wait_drained(settings.database_url, len(senders.acked), WORKER_STALE_SECONDS + 60, relay=True)
    assert time.monotonic() - killed_at >= WORKER_STALE_SECONDS - 10
    assert replacement.registered(redis_conn, queue).term(30)[0] == 0
    check_ledger(settings.database_url, senders, stack.worker_logs, all_logged=False)
    check_redis(redis_conn, queue, [replacement.name], killed=doomed.name)
