"""process_delivery: turn one stored webhook into ledger changes, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from trackrecord import payloads
from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from workers import context

log = get_logger("workers.jobs")


def process_delivery(delivery_row_id: int) -> str:
    """Claim and process a delivery in one transaction.

    The claim is an UPDATE ... WHERE status <> 'processed' inside the same transaction as the
    ledger writes: a second run of the same job (relay, RQ retry, redelivered id) waits on the
    row lock and then finds nothing to claim; a worker killed mid-job never commits, so the row
    stays claimable and nothing is half-applied.
    """
    Session = context.sessions()
    with Session() as session, session.begin():
        claimed = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_row_id, Delivery.status != DeliveryStatus.PROCESSED)
            .values(status=DeliveryStatus.PROCESSED, processed_at=datetime.now(UTC), error=None)
        ).rowcount
        if not claimed:
            exists = session.scalar(select(Delivery.id).where(Delivery.id == delivery_row_id))
            outcome = "already_processed" if exists else "missing"
            log.info("delivery.skip", row=delivery_row_id, outcome=outcome)
            return outcome
        row = session.get(Delivery, delivery_row_id)
        doc = payloads.decode(row.body, row.headers)
        handle(session, row, doc)
    log.info("delivery.processed", row=delivery_row_id, source=row.source, kind=row.event)
    return "processed"


def handle(session, row: Delivery, doc: dict) -> None:
    """Hand the decoded payload to its connector. For now the parse is the whole job."""
    return None


def on_delivery_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ calls this on every failed attempt; only the last one marks the delivery failed."""
    if job.retries_left:
        return
    row_id = job.args[0] if job.args else None
    if row_id is None:
        return
    Session = context.sessions()
    with Session() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.id == row_id, Delivery.status != DeliveryStatus.PROCESSED)
            .values(status=DeliveryStatus.FAILED, error=f"{exc_type.__name__}: {exc_value}"[:2000])
        )
    log.error("delivery.failed", row=row_id, error=exc_type.__name__)
