"""Store a checked delivery, then hand it to the queue: no 2xx unless the row is committed.

One statement on the way that matters: the row is inserted already marked `queued` (one
attempt), since the enqueue right after it nearly always succeeds; only when it fails is the
mark taken back to `pending`. The insert and the enqueue are shared with the other requests
the process holds at that moment (webhook_app.intake_group), each answered as if alone. A row
left `queued` without a job (this process killed between its insert and its enqueue, or the
database gone before the mark was taken back) is what relay puts back on the queue: it
enqueues a queued row whose job Redis does not hold, as it does a pending one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from trackrecord.logs import get_logger
from trackrecord.models import DeliveryStatus
from webhook_app import metrics
from webhook_app.intake import Incoming, safe_headers, validate
from webhook_app.intake_group import DUPLICATE, FAILED, STORED_PENDING, STORED_QUEUED, Entry

log = get_logger("webhook_app")


def accept(svc, request, incoming: Incoming, call) -> tuple[int, dict]:
    """Store the delivery, then hand it to the queue; the answer's status and body."""
    validate(incoming)
    now = datetime.now(UTC)
    values = dict(
        source=incoming.source,
        delivery_id=incoming.delivery_id,
        event=incoming.event,
        action=incoming.action,
        source_key=incoming.source_key,
        team=incoming.team,
        verified_sources=(
            None if incoming.verified_sources is None else list(incoming.verified_sources)
        ),
        headers=safe_headers(request),
        body=incoming.body,
        status=DeliveryStatus.QUEUED,
        queued_at=now,
        attempts=1,
        received_at=now,
    )
    labels = (incoming.source, metrics.event_label(incoming.source, call.event), "queued")
    entry = svc.group.write(Entry(values, labels))
    delivery = incoming.delivery_id
    if entry.outcome == STORED_QUEUED:
        call.counted = True  # with its job
        log.info(
            "webhook.queued",
            source=incoming.source,
            delivery=delivery,
            kind=incoming.event,
            team=incoming.team,
        )
        return 202, {"delivery": delivery, "status": DeliveryStatus.QUEUED}
    if entry.outcome == STORED_PENDING:
        log.warning(
            "webhook.redis_unavailable",
            source=incoming.source,
            delivery=delivery,
            error=entry.redis_error,
        )
        return 202, {"delivery": delivery, "status": DeliveryStatus.PENDING}
    if entry.outcome == DUPLICATE:
        log.info("webhook.duplicate", source=incoming.source, delivery=delivery)
        return 200, {"delivery": delivery, "status": "duplicate"}
    if entry.outcome == FAILED:
        exc = entry.error
        log.error(
            "webhook.database_unavailable",
            source=incoming.source,
            delivery=delivery,
            error=type(exc.orig).__name__ if exc.orig else type(exc).__name__,
        )
        return 503, {
            "error": "database_unavailable",
            "message": "the delivery could not be stored; it was not accepted, please retry",
            "delivery": delivery,
        }
    # The request that wrote this group failed unexpectedly (its own answer is a 500).
    raise RuntimeError(f"delivery {delivery!r} was not written: its group's writer failed")
