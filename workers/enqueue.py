"""Handing a stored delivery to RQ: the retry policy of `process_delivery` (its job id is
workers.jobs.job_id) and the row's move to `queued`. The web route and relay both enqueue
through here, so a relayed delivery is the same job as its first enqueue."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import Callback, Queue, Retry
from rq.job import Job
from sqlalchemy import update
from sqlalchemy.orm import Session

from trackrecord.models import Delivery, DeliveryStatus
from workers.jobs import job_id, on_delivery_failure, process_delivery

# A delivery's job may be retried by RQ itself for passing faults (database restarting,
# GitHub API 5xx) before relay takes over; the intervals leave room for a restart.
JOB_RETRY = Retry(max=3, interval=[5, 30, 120])
JOB_TIMEOUT = 300


def enqueue_delivery(queue: Queue, delivery_row_id: int, *, pipeline=None) -> Job:
    """Put the delivery's job on the queue. With `pipeline`, the caller executes it: the job's
    hash and its place on the queue then cost one round trip to Redis."""
    return queue.enqueue(
        process_delivery,
        delivery_row_id,
        job_id=job_id(delivery_row_id),
        retry=JOB_RETRY,
        job_timeout=JOB_TIMEOUT,
        on_failure=Callback(on_delivery_failure),
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"process_delivery({delivery_row_id})",
        pipeline=pipeline,
    )


def mark_queued(session: Session, delivery_row_id: int, from_status: str) -> None:
    """The row is on the queue, counted as one more attempt. Only from `from_status`: a fast
    worker may already have marked it processed. Does not commit."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_row_id, Delivery.status == from_status)
        .values(
            status=DeliveryStatus.QUEUED,
            queued_at=datetime.now(UTC),
            attempts=Delivery.attempts + 1,
        )
    )
