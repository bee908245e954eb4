"""relay_pending: the database is the source of truth; this puts Redis back in step with it.

It enqueues deliveries stored while Redis was down (pending), and re-enqueues deliveries
marked queued whose job Redis no longer holds (a Redis restarted without persistence) or whose
job ended without processing them (a worker killed mid-job after its retries ran out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from trackrecord.queue import enqueue_delivery, get_queue, job_is_live, redis_from_url
from workers import context

log = get_logger("workers.relay")


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
        for row_id, status, attempts in rows:
            last_id = row_id
            _relay_one(
                Session, queue, redis, settings.max_attempts, row_id, status, attempts, result
            )
    if result.enqueued or result.gave_up:
        log.info("relay.done", **result.as_dict())
    return result.as_dict()


def _relay_one(Session, queue, redis, max_attempts, row_id, status, attempts, result) -> None:
    if status == DeliveryStatus.QUEUED and job_is_live(redis, f"delivery-{row_id}"):
        result.live += 1
        return
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
    enqueue_delivery(queue, row_id)
    with Session() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.id == row_id, Delivery.status == status)
            .values(
                status=DeliveryStatus.QUEUED,
                queued_at=datetime.now(UTC),
                attempts=Delivery.attempts + 1,
            )
        )
    result.enqueued += 1
