"""What both webhook routes share: bounded body reading, errors as JSON, store then enqueue.

The order is fixed and each step has its own answer (as in Sentry's webhook views): size,
content type, headers, signature, JSON, event, source; only then is anything written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from trackrecord import payloads
from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from trackrecord.queue import enqueue_delivery

log = get_logger("webhook_app")

# Headers kept with the raw body: enough to replay and to debug, nothing that authenticates.
_DROP_HEADERS = {"authorization", "cookie", "proxy-authorization"}


class Rejected(Exception):
    """A bad request: a status, a stable error code and a sentence for the sender."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self):
        body = {"error": self.code, "message": self.message, **self.extra}
        return jsonify(body), self.status


def services():
    return current_app.extensions["trackrecord"]


def read_body(max_bytes: int) -> bytes:
    """Refuse an oversized body from its Content-Length alone, before reading it; a chunked one
    is read up to the limit and no further."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise Rejected(413, "payload_too_large", f"body of {length} bytes exceeds {max_bytes}")
    body = request.stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise Rejected(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    if not body:
        raise Rejected(400, "empty_body", "the request has no body")
    return body


def require_content_type(allowed: tuple[str, ...]) -> str:
    mimetype = request.mimetype
    if mimetype not in allowed:
        shown = mimetype or "none"
        raise Rejected(
            415,
            "unsupported_media_type",
            f"content type {shown!r} is not accepted; send {' or '.join(allowed)}",
        )
    return mimetype


def require_header(name: str) -> str:
    value = request.headers.get(name, "").strip()
    if not value:
        raise Rejected(400, "missing_header", f"header {name} is required")
    return value


def json_document(body: bytes, mimetype: str, *, strict: bool = True) -> dict:
    """The JSON object in the body. Not strict: {} on any problem (used before the signature is
    checked, only to choose which secret applies; nothing read so is trusted)."""
    try:
        return payloads.document(payloads.json_bytes(body, mimetype))
    except payloads.PayloadError as exc:
        if not strict:
            return {}
        raise Rejected(400, exc.code, str(exc)) from None


@dataclass(frozen=True)
class Incoming:
    source: str
    delivery_id: str
    event: str
    action: str | None
    source_key: str | None
    team: str | None
    body: bytes


def safe_headers() -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() not in _DROP_HEADERS}


def accept(incoming: Incoming):
    """Store the delivery, then hand it to the queue. No 2xx unless the row is committed."""
    svc = services()
    Session = svc.sessions
    try:
        with Session() as session:
            row = Delivery(
                source=incoming.source,
                delivery_id=incoming.delivery_id,
                event=incoming.event,
                action=incoming.action,
                source_key=incoming.source_key,
                team=incoming.team,
                headers=safe_headers(),
                body=incoming.body,
                status=DeliveryStatus.PENDING,
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                # The unique (source, delivery_id) key decides races between concurrent
                # redeliveries: exactly one insert wins, the others land here.
                session.rollback()
                existing = session.scalar(
                    select(Delivery.id).where(
                        Delivery.source == incoming.source,
                        Delivery.delivery_id == incoming.delivery_id,
                    )
                )
                if existing is None:
                    raise
                log.info("webhook.duplicate", source=incoming.source, delivery=incoming.delivery_id)
                return jsonify(delivery=incoming.delivery_id, status="duplicate"), 200
            row_id = row.id
    except DBAPIError as exc:
        log.error(
            "webhook.database_unavailable",
            source=incoming.source,
            delivery=incoming.delivery_id,
            error=type(exc.orig).__name__ if exc.orig else type(exc).__name__,
        )
        return jsonify(
            error="database_unavailable",
            message="the delivery could not be stored; it was not accepted, please retry",
            delivery=incoming.delivery_id,
        ), 503

    status = _enqueue(row_id, incoming)
    return jsonify(delivery=incoming.delivery_id, status=status), 202


def _enqueue(row_id: int, incoming: Incoming) -> str:
    svc = services()
    try:
        enqueue_delivery(svc.queue(), row_id)
    except (RedisError, OSError) as exc:
        # Stored is enough to answer 2xx: `trackrecord relay` (and the worker) enqueue it later.
        log.warning(
            "webhook.redis_unavailable",
            source=incoming.source,
            delivery=incoming.delivery_id,
            error=type(exc).__name__,
        )
        return DeliveryStatus.PENDING
    try:
        with svc.sessions() as session:
            # Only pending -> queued: a fast worker may already have marked it processed.
            session.execute(
                update(Delivery)
                .where(Delivery.id == row_id, Delivery.status == DeliveryStatus.PENDING)
                .values(
                    status=DeliveryStatus.QUEUED,
                    queued_at=datetime.now(UTC),
                    attempts=Delivery.attempts + 1,
                )
            )
            session.commit()
    except DBAPIError:
        # The job is on the queue and the row is stored; relay tidies the status later.
        log.warning("webhook.mark_queued_failed", delivery=incoming.delivery_id)
    log.info(
        "webhook.queued",
        source=incoming.source,
        delivery=incoming.delivery_id,
        kind=incoming.event,
        team=incoming.team,
    )
    return DeliveryStatus.QUEUED


def ignored(incoming_delivery: str, reason: str):
    log.info("webhook.ignored", delivery=incoming_delivery, reason=reason)
    return jsonify(delivery=incoming_delivery, status="ignored", reason=reason), 200
