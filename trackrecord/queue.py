"""The RQ side: one queue, job ids derived from delivery rows, and a Redis that fails fast."""

from __future__ import annotations

from redis import Redis
from rq import Callback, Queue, Retry
from rq.job import Job, JobStatus

# A delivery's job may be retried by RQ itself for passing faults (database restarting,
# GitHub API 5xx) before relay takes over; the intervals leave room for a restart.
JOB_RETRY = Retry(max=3, interval=[5, 30, 120])
JOB_TIMEOUT = 300


def redis_from_url(url: str, *, fast: bool = False) -> Redis:
    # The web process must answer even when Redis is gone: a short connect timeout turns a dead
    # Redis into an immediate error (the delivery is then kept as pending), not a hung request.
    if fast:
        return Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def get_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis)


def enqueue_delivery(queue: Queue, delivery_row_id: int) -> Job:
    from workers.jobs import on_delivery_failure, process_delivery

    return queue.enqueue(
        process_delivery,
        delivery_row_id,
        job_id=f"delivery-{delivery_row_id}",
        retry=JOB_RETRY,
        job_timeout=JOB_TIMEOUT,
        on_failure=Callback(on_delivery_failure),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"process_delivery({delivery_row_id})",
    )


# States in which Redis still holds the job and will run (or is running) it.
LIVE_STATES = {
    JobStatus.QUEUED,
    JobStatus.STARTED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
    JobStatus.RATE_LIMITED,
    JobStatus.READY_TO_ENQUEUE,
}


def job_is_live(redis: Redis, job_id: str) -> bool:
    try:
        job = Job.fetch(job_id, connection=redis)
    except Exception:  # NoSuchJobError, or a hash Redis lost half of
        return False
    return job.get_status(refresh=False) in LIVE_STATES
