"""A rolling restart loses nothing (issue 11): on SIGTERM `trackrecord worker` finishes the
delivery in hand, puts the rest of its batch back on the queue and exits 0; a second SIGTERM
gives the delivery in hand up and requeues it. Then the whole of it under load: two web
processes and two workers, each restarted in turn while senders keep sending, and the ledger
holds every acknowledged delivery exactly once."""

from __future__ import annotations

import signal
import time

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, text

from tests.fault_load import busy, check_ledger, check_redis, started_by, wait_drained
from tests.fault_procs import WorkerProcess
from tests.test_drain import burst, ledger, milestoned, post
from trackrecord.db import session_factory
from trackrecord.models import Delivery

PROMPT = 10  # seconds within which a worker told to stop has exited


@pytest.fixture
def held(client, settings, redis_conn, tmp_path):
    """20 queued deliveries, a `trackrecord worker`, and a way to hold a delivery's row (on
    PostgreSQL its row lock; on SQLite the database's write lock) so that the worker is caught
    in the middle of it."""
    for n in range(1, 21):
        post(client, milestoned(n), f"held-{n}")
    Session = session_factory(settings.database_url)
    with Session() as s:
        ids = list(s.scalars(select(Delivery.id).order_by(Delivery.id)))
    blocker = Session()

    def hold(row: int) -> None:
        blocker.execute(text("UPDATE deliveries SET attempts = attempts WHERE id = :i"), {"i": row})

    queue = Queue(settings.queue_name, connection=redis_conn)
    workers = []

    def start() -> WorkerProcess:
        workers.append(WorkerProcess(tmp_path / f"worker-{len(workers)}.log"))
        return workers[-1].registered(redis_conn, queue)

    yield ids, hold, blocker, queue, start
    blocker.rollback()
    blocker.close()
    for worker in workers:
        worker.stop()


def wait_until(check, seconds: float = 30, poll: float = 0.05) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(poll)


def waiting_on_a_lock(settings) -> bool:
    """Whether a PostgreSQL session of the test's database waits for a row lock."""
    with session_factory(settings.database_url)() as s:
        return bool(
            s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )
        )


def test_sigterm_finishes_the_delivery_in_hand_and_puts_the_rest_back(held, settings, redis_conn):
    ids, hold, blocker, queue, start = held
    postgres = settings.database_url.startswith("postgresql")
    # PostgreSQL: the job applies its own delivery, takes the 19 behind it (one milestone: one
    # transaction) and waits on the 10th's row. SQLite (one writer): it waits at its own
    # delivery, before taking any.
    hold(ids[9] if postgres else ids[0])
    worker = start()
    first = Job.fetch(f"delivery-{ids[0]}", connection=redis_conn)
    wait_until(lambda: first.get_status() == JobStatus.STARTED)
    if postgres:  # its own delivery applied, the transaction of the other 19 waits
        wait_until(lambda: ledger(settings)["deliveries"].get("processed") == 1)
        wait_until(lambda: waiting_on_a_lock(settings))

    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    blocker.rollback()  # the delivery in hand can go on now
    code = worker.proc.wait(PROMPT)
    assert code == 0, worker.log.read_text()[-3000:]

    # It finished the transaction in hand and took no other: the rest wait on the queue, in
    # order, for the next worker (not for relay), none counted as one more attempt.
    done = 20 if postgres else 1
    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": done, **({"queued": 20 - done} if done < 20 else {})}
    assert seen["commitments"] == done and seen["attempts"] == [1]
    assert queue.job_ids == [f"delivery-{i}" for i in ids[done:]]
    assert first.get_status() == JobStatus.FINISHED and first.return_value() == "processed"
    check_redis(redis_conn, queue, [worker.name], waiting=20 - done)

    burst(settings, redis_conn)
    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 20} and seen["attempts"] == [1]
    assert seen["items"] == seen["commitments"] == 20


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_second_sigterm_gives_the_delivery_in_hand_up_and_requeues_it(held, settings, redis_conn):
    # The 10th delivery's row stays held: the worker cannot finish the transaction of the 19
    # behind its own delivery, and must not wait for it.
    ids, hold, _blocker, queue, start = held
    hold(ids[9])
    worker = start()
    wait_until(lambda: ledger(settings)["deliveries"].get("processed") == 1)
    wait_until(lambda: waiting_on_a_lock(settings))

    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert worker.proc.poll() is None  # still waiting on the row in hand
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(PROMPT) == 0, worker.log.read_text()[-3000:]

    # The transaction in hand was rolled back: its deliveries go back on the queue, in order.
    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 1, "queued": 19} and seen["attempts"] == [1]
    assert queue.job_ids == [f"delivery-{i}" for i in ids[1:]]
    check_redis(redis_conn, queue, [worker.name], waiting=19)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_job_given_up_at_shutdown_is_requeued_first_and_not_failed(held, settings, redis_conn):
    ids, hold, blocker, queue, start = held
    hold(ids[0])  # the job's own delivery
    worker = start()
    first = Job.fetch(f"delivery-{ids[0]}", connection=redis_conn)
    wait_until(lambda: first.get_status() == JobStatus.STARTED)

    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(PROMPT) == 0, worker.log.read_text()[-3000:]

    # Not a failure: first in line again, its retries untouched, nothing scheduled or failed.
    assert queue.job_ids == [f"delivery-{i}" for i in ids]
    first.refresh()
    assert first.get_status() == JobStatus.QUEUED and first.retries_left == 3
    assert ScheduledJobRegistry(queue=queue).get_job_ids() == []
    check_redis(redis_conn, queue, [worker.name], waiting=20)
    blocker.rollback()
    burst(settings, redis_conn)
    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 20} and seen["attempts"] == [1]
    assert seen["items"] == seen["commitments"] == 20


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_idle_worker_exits_at_once_on_sigterm(held, redis_conn):
    _ids, _hold, _blocker, queue, start = held
    for job_id in queue.job_ids:
        queue.remove(job_id)
    worker = start()
    code, seconds = worker.term(PROMPT)
    assert code == 0 and seconds < 5, (code, seconds)
    check_redis(redis_conn, queue, [worker.name], waiting=0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_told_to_stop_while_redis_is_away_exits_at_once(own_redis, settings, tmp_path):
    # Ctrl-C on `trackrecord up` stops its Redis first: RQ's dequeue retried it, deaf to the
    # stop, until the SIGKILL.
    redis = Redis.from_url(own_redis.url)
    worker = WorkerProcess(tmp_path / "worker.log").registered(
        redis, Queue(settings.queue_name, connection=redis)
    )
    own_redis.stop()
    time.sleep(1.5)  # the worker's next dequeue finds Redis away
    code, seconds = worker.term(PROMPT)
    assert code == 0 and seconds < 5, (code, seconds, worker.log.read_text()[-2000:])


def test_rolling_restart_of_web_and_workers_under_load(stack, settings, redis_conn):
    """Two web processes behind the senders (who go to the other one when one does not
    answer) and two workers, each worker restarted in turn with SIGTERM while the senders
    send, and one of the web processes (each one's restart is the same)."""
    queue = Queue(settings.queue_name, connection=redis_conn)
    webs = [stack.web(), stack.web()]
    workers = [stack.worker(), stack.worker()]
    for web in webs:
        web.ready()
    for worker in workers:
        worker.registered(redis_conn, queue)
    senders = stack.senders([web.url for web in webs], "rolling", pace=0.1)
    senders.wait_for(30)

    # gunicorn stops listening and answers the requests in hand; meanwhile its successor
    # starts, and takes the port once it is free. The other one answers meanwhile.
    old, webs[0] = webs[0], stack.web(port=webs[0].port)
    assert old.term() == 0
    webs[0].ready()
    senders.wait_for(20)

    stopped = []
    for i in range(2):
        # A worker told to stop while it drains (its successor already starting, as in a
        # rolling update): out promptly, nothing of it left started, nothing waits for relay.
        old, workers[i] = workers[i], stack.worker()
        wait_until(lambda w=old: busy(redis_conn, w.name), seconds=10, poll=0.005)
        code, seconds = old.term(PROMPT)
        assert code == 0 and seconds < PROMPT, (code, seconds)
        stopped.append(old.name)
        assert started_by(redis_conn, stopped) == []
        workers[i].registered(redis_conn, queue)
        senders.wait_for(20)
    senders.stop()

    # No relay here: what a stopping worker had not applied went back on the queue itself.
    wait_drained(settings.database_url, len(senders.acked), 60)
    for worker in workers:
        code, seconds = worker.term(PROMPT)
        assert code == 0 and seconds < PROMPT, (code, seconds)
        stopped.append(worker.name)
    check_ledger(settings.database_url, senders, stack.worker_logs)
    check_redis(redis_conn, queue, stopped)
