"""relay_pending: the database is the source of truth; this puts Redis back in step with it.

It enqueues deliveries stored while Redis was down (pending), and re-enqueues deliveries
marked queued whose job Redis no longer holds (a Redis restarted without persistence; a web
process killed between its commit and its enqueue), whose job ended without processing them
(a worker killed mid-job after its retries ran out), or whose job is `started` by a worker
that is gone (killed, or its machine lost: no heartbeat for WORKER_STALE_SECONDS), including
the jobs a batch took off the queue (workers.jobs.Batch marks them started by its worker).
The job goes back on the queue under the same id; processing it twice is harmless, since
process_delivery claims the row first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from trackrecord.queue import forget_executions, get_queue, live_jobs, redis_from_url
from workers import context
from workers.enqueue import enqueue_delivery, job_id, mark_queued

log = get_logger("workers.relay")

# Two relays at once (the scheduler's and a worker's) must not both enqueue one delivery: the
# first to set this key does, for a while longer than one relay of a delivery takes.
LOCK_PREFIX = "trackrecord:relay:"
LOCK_SECONDS = 30


@dataclass
class RelayResult:
    enqueued: int = 0
    live: int = 0
    gave_up: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"enqueued": self.enqueued, "live": self.live, "gave_up": self.gave_up}


def relay_pending(min_age_seconds: float | None = None, batch: int = 500) -> dict[str, int]:
    settings = context.settings()
    if min_age_seconds is None:
        min_age_seconds = settings.relay_min_age_seconds
    redis = redis_from_url(settings.redis_url)
    queue = get_queue(redis, settings.queue_name)
    Session = context.sessions()
    # The age floor keeps relay from racing the web process, which is between its commit and
    # its enqueue for a moment; a duplicate enqueue would be harmless, only wasteful.
    cutoff = datetime.now(UTC) - timedelta(seconds=min_age_seconds)
    result = RelayResult()
    last_id = 0
    while True:
        with Session() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.status, Delivery.attempts)
                .where(
                    Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.QUEUED]),
                    Delivery.received_at <= cutoff,
                    Delivery.id > last_id,
                )
                .order_by(Delivery.id)
                .limit(batch)
            ).all()
        if not rows:
            break
        queued = [job_id(r) for r, status, _ in rows if status == DeliveryStatus.QUEUED]
        live = live_jobs(redis, queued)
        for row_id, status, attempts in rows:
            last_id = row_id
            if job_id(row_id) in live:
                result.live += 1
                continue
            _relay_one(
                Session, queue, redis, settings.max_attempts, row_id, status, attempts, result
            )
    if result.enqueued or result.gave_up:
        log.info("relay.done", **result.as_dict())
    return result.as_dict()


def _relay_one(Session, queue, redis, max_attempts, row_id, status, attempts, result) -> None:
    job = job_id(row_id)
    if attempts >= max_attempts:
        with Session() as session, session.begin():
            session.execute(
                update(Delivery)
                .where(Delivery.id == row_id, Delivery.status == status)
                .values(
                    status=DeliveryStatus.FAILED,
                    error=f"gave up after {attempts} attempts; see the failed job registry",
                )
            )
        result.gave_up += 1
        log.error("relay.gave_up", row=row_id, attempts=attempts)
        return
    if not redis.set(LOCK_PREFIX + job, 1, nx=True, ex=LOCK_SECONDS):
        return  # another relay is enqueueing it right now
    if forget_executions(redis, queue, job):
        log.warning("relay.worker_lost", row=row_id, job=job)
    enqueue_delivery(queue, row_id)
    with Session() as session, session.begin():
        mark_queued(session, row_id, status)
    result.enqueued += 1
