"""trackrecord.job_script: the intake's job, written in one Redis command, is the job RQ's own
enqueue writes (the same hash, queue entry and set of queues), Job.fetch reads it, a stock RQ
worker runs it, and a job shape the script cannot reproduce is refused when it is built."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job

from trackrecord.job_script import JobScript, JobShapeChanged
from workers.enqueue import enqueue_delivery
from workers.jobs import job_id, process_delivery

TIMES = {b"created_at", b"enqueued_at"}


def delivery_script(redis, queue) -> JobScript:
    return JobScript.build(redis, lambda pipe, n: enqueue_delivery(queue, n, pipeline=pipe))


def test_the_delivery_job_is_the_one_rq_writes(redis_conn):
    queue = Queue("script-a", connection=redis_conn)
    script = delivery_script(redis_conn, queue)
    script.write(redis_conn, 41, count=("trackrecord:test:counts", "github|issues|queued|"))
    theirs = Queue("script-b", connection=redis_conn)
    enqueue_delivery(theirs, 42)

    ours_hash = redis_conn.hgetall(Job.key_for(job_id(41)))
    their_hash = redis_conn.hgetall(Job.key_for(job_id(42)))
    assert set(ours_hash) == set(their_hash)
    differ = {k for k in ours_hash if ours_hash[k] != their_hash[k]}
    # Only what follows from the row id, the queue's name and the time.
    assert differ == {b"data", b"description", b"origin"} | TIMES
    assert ours_hash[b"origin"] == b"script-a"
    assert ours_hash[b"created_at"] == ours_hash[b"enqueued_at"]
    assert redis_conn.lrange(queue.key, 0, -1) == [job_id(41).encode()]
    assert {queue.key.encode(), theirs.key.encode()} <= redis_conn.smembers("rq:queues")
    assert redis_conn.hgetall("trackrecord:test:counts") == {b"github|issues|queued|": b"1"}

    job = Job.fetch(job_id(41), connection=redis_conn)
    theirs_job = Job.fetch(job_id(42), connection=redis_conn)
    assert job.func is process_delivery and job.args == (41,) and job.kwargs == {}
    assert job.description == "process_delivery(41)"
    assert job.get_status() == "queued" and job.origin == "script-a"
    for attribute in ("retries_left", "retry_intervals", "timeout", "result_ttl", "failure_ttl"):
        assert getattr(job, attribute) == getattr(theirs_job, attribute), attribute
    assert job.failure_callback is theirs_job.failure_callback
    assert abs((job.enqueued_at - theirs_job.enqueued_at).total_seconds()) < 60


def test_many_jobs_in_one_command_are_each_the_one_written_alone(redis_conn):
    queue = Queue("script-many", connection=redis_conn)
    script = delivery_script(redis_conn, queue)
    counts = "trackrecord:test:many"
    script.write_many(
        redis_conn,
        [(7, (counts, "github|issues|queued|")), (8, None), (9, (counts, "jira|x|queued|"))],
    )
    script.write(redis_conn, 10, count=(counts, "github|issues|queued|"))
    # In the order given, each its own job, the counts of those that asked for one.
    assert redis_conn.lrange(queue.key, 0, -1) == [job_id(n).encode() for n in (7, 8, 9, 10)]
    assert redis_conn.hgetall(counts) == {b"github|issues|queued|": b"2", b"jira|x|queued|": b"1"}
    alone = redis_conn.hgetall(Job.key_for(job_id(10)))
    for n in (7, 8, 9):
        job = Job.fetch(job_id(n), connection=redis_conn)
        assert job.func is process_delivery and job.args == (n,)
        mine = redis_conn.hgetall(Job.key_for(job_id(n)))
        assert set(mine) == set(alone)
        assert {k for k in mine if mine[k] != alone[k]} <= {b"data", b"description"} | TIMES
    with pytest.raises(ValueError, match="more than one hash"):
        script.write_many(redis_conn, [(11, ("a", "f")), (12, ("b", "f"))])
    assert redis_conn.llen(queue.key) == 4


def add(a: int) -> int:
    return a + 1000


def test_a_stock_rq_worker_runs_a_written_job(redis_conn):
    queue = Queue("script-run", connection=redis_conn)
    script = JobScript.build(
        redis_conn,
        lambda pipe, n: queue.enqueue(add, n, job_id=f"add-{n}", result_ttl=60, pipeline=pipe),
    )
    script.write(redis_conn, 7)
    assert redis_conn.hgetall("trackrecord:test:counts") == {}  # no count asked for
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    job = Job.fetch("add-7", connection=redis_conn)
    assert job.get_status() == "finished" and job.return_value() == 1007


def test_the_script_is_loaded_again_after_redis_forgets_it(redis_conn):
    queue = Queue("script-flush", connection=redis_conn)
    script = delivery_script(redis_conn, queue)
    script.write(redis_conn, 1)
    redis_conn.script_flush()  # as a Redis restarted without persistence
    script.write(redis_conn, 2)
    assert redis_conn.lrange(queue.key, 0, -1) == [job_id(1).encode(), job_id(2).encode()]


@pytest.mark.parametrize(
    "enqueue",
    [
        # The call is not f(n): more arguments than n.
        lambda queue: lambda pipe, n: queue.enqueue(add, n, 2, job_id=f"x-{n}", pipeline=pipe),
        # Something that follows from n is written without spelling n out.
        lambda queue: (
            lambda pipe, n: queue.enqueue(
                add, n, job_id=f"x-{n}", meta={"twice": 2 * n}, pipeline=pipe
            )
        ),
    ],
)
def test_a_job_the_template_cannot_write_is_refused(redis_conn, enqueue):
    queue = Queue("script-odd", connection=redis_conn)
    with pytest.raises(JobShapeChanged):
        JobScript.build(redis_conn, enqueue(queue))
    assert redis_conn.llen(queue.key) == 0  # recording sends nothing
