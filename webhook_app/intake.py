"""What both webhook routes share: bounded body reading, checks, store then enqueue.

The order is fixed and each step has its own answer (as in Sentry's webhook views): size,
content type, headers, signature, JSON, event, source, and values that fit their columns;
only then is anything written. Every refusal is a 4xx, so a sender does not retry it; a 5xx
means a fault here (the database down) that a retry can outlast.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import jsonify, request
from gunicorn.http.errors import ParseException
from redis.exceptions import RedisError
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from werkzeug.exceptions import ClientDisconnected

from trackrecord import payloads
from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from webhook_app import metrics
from webhook_app.errors import Rejected
from webhook_app.services import services
from workers.enqueue import enqueue_delivery

log = get_logger("webhook_app")

# Headers kept with the raw body: enough to replay and to debug, nothing that authenticates.
_DROP_HEADERS = {"authorization", "cookie", "proxy-authorization"}

# A sender has this long to deliver the whole body. GitHub itself gives up after 10 s
# (https://docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks), so a
# slower body is not one a real sender is still waiting on.
READ_SECONDS = 10.0
# A pause this long between two pieces of the body is a sender that stalled, or one whose
# Content-Length promised more than it sends.
IDLE_SECONDS = 5.0


def read_body(max_bytes: int) -> bytes:
    """Refuse an oversized body from its Content-Length alone, before reading it; a chunked one
    is read up to the limit and no further. Read it within READ_SECONDS (408 otherwise), and
    answer a body that is cut short or badly framed with a 400, never a 500."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise Rejected(413, "payload_too_large", f"body of {length} bytes exceeds {max_bytes}")
    try:
        body = _read(max_bytes + 1)
    except TimeoutError:
        _abandon_connection()
        raise Rejected(
            408,
            "request_timeout",
            f"the body did not arrive within {READ_SECONDS:g} s "
            f"(or stalled for {IDLE_SECONDS:g} s)",
        ) from None
    except ParseException as exc:  # gunicorn: a bad chunk size, extension or terminator
        _abandon_connection()
        raise Rejected(400, "malformed_body", f"the chunked body is malformed: {exc}") from None
    except (OSError, ClientDisconnected):  # the stream ended before the body did
        _abandon_connection()
        raise Rejected(400, "incomplete_body", "the body ended before it was complete") from None
    if len(body) > max_bytes:
        raise Rejected(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    if length is not None and len(body) < length:
        # The sender closed its side early: gunicorn hands back what came, without an error.
        _abandon_connection()
        raise Rejected(
            400,
            "incomplete_body",
            f"the body has {len(body)} bytes, its Content-Length says {length}",
        )
    if not body:
        raise Rejected(400, "empty_body", "the request has no body")
    return body


def _read(size: int) -> bytes:
    """Read up to `size` bytes of the body, bounded in time when a socket is behind it.

    Under gunicorn the socket is environ["gunicorn.socket"]: its timeout bounds each wait for
    the next piece (IDLE_SECONDS). The whole read is bounded by a gevent timer, since with the
    gevent worker (`trackrecord serve`) a sender trickling a byte a second never lets a socket
    timeout fire; other workers have only gunicorn's own worker timeout for that.
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is None:  # the test client, or a server that keeps its socket to itself
        return request.stream.read(size)
    previous = sock.gettimeout()
    sock.settimeout(IDLE_SECONDS)
    with _whole_read_timer():
        body = request.stream.read(size)
    # Only after a complete read: a failed one leaves the short timeout on the socket, so
    # whatever reads from it next cannot wait long either.
    sock.settimeout(previous)
    return body


def _whole_read_timer():
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return nullcontext()
    import gevent

    # Raised as an ordinary TimeoutError inside the read, as a socket timeout would be.
    return gevent.Timeout(READ_SECONDS, TimeoutError(f"body not read within {READ_SECONDS} s"))


def _abandon_connection() -> None:
    """The rest of this connection cannot be trusted (the body's end is unknown): gunicorn
    closes a connection whose body reader is marked failed, instead of draining the unread
    body at the sender's pace before reading another request from it."""
    stream = request.environ.get("wsgi.input")
    if hasattr(stream, "failed"):
        stream.failed = True


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


def json_document(body: bytes, mimetype: str) -> dict:
    """The JSON object in a verified body (bounded parsing: trackrecord.payloads)."""
    try:
        return payloads.document(payloads.json_bytes(body, mimetype))
    except payloads.PayloadError as exc:
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
    # The source keys its signature verified (webhook_app.signatures), kept for the worker.
    verified_sources: tuple[str, ...] | None = None


# Where each stored value of a delivery comes from, to name it in a refusal: a bad header is
# the sender's doing (`invalid_header`), a bad body field the payload's (`invalid_field`).
_ORIGINS = {
    "github": {
        "delivery_id": ("header", "X-GitHub-Delivery"),
        "event": ("header", "X-GitHub-Event"),
        "action": ("field", "action"),
        "source_key": ("field", "repository.full_name"),
    },
    "jira": {
        "delivery_id": ("header", "X-Atlassian-Webhook-Identifier"),
        "event": ("field", "webhookEvent"),
        "action": ("field", "issue_event_type_name"),
        "source_key": ("field", "issue.fields.project.key"),
    },
}
_CHECKED = ("delivery_id", "event", "action", "source_key", "team")


def _column_length(name: str) -> int:
    return Delivery.__table__.c[name].type.length


def validate(incoming: Incoming) -> None:
    """Refuse, before any insert, a value the deliveries table cannot hold: longer than its
    column, or not printable text (NUL, control characters, lone surrogates). PostgreSQL would
    refuse it at the insert, and a database error answers 503, which the sender retries forever
    for a delivery that can never be stored."""
    origins = _ORIGINS.get(incoming.source, {})
    for name in _CHECKED:
        value = getattr(incoming, name)
        if value is None:
            continue
        kind, label = origins.get(name, ("field", name))
        code = "invalid_header" if kind == "header" else "invalid_field"
        limit = _column_length(name)
        if len(value) > limit:
            raise Rejected(
                400, code, f"{label} is {len(value)} characters long; at most {limit} are accepted"
            )
        if not value.isprintable():
            raise Rejected(
                400, code, f"{label} holds a control character, NUL or lone surrogate: {value!a}"
            )


def _printable(text: str) -> str:
    # Header values reach WSGI as latin-1 text and may hold control characters (or, from a
    # lenient server, surrogate escapes): stored escaped, so a JSON column takes them anywhere.
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def safe_headers() -> dict[str, str]:
    return {
        _printable(k): _printable(v)
        for k, v in request.headers.items()
        if k.lower() not in _DROP_HEADERS
    }


# Built once: a statement made per request costs as much again as running it (its cache key).
# On the table, not the ORM entity: the ORM's bulk-insert path costs more than the statement.
_TABLE = Delivery.__table__
_INSERT = insert(_TABLE).returning(_TABLE.c.id)
_EXISTING = select(_TABLE.c.id).where(
    _TABLE.c.source == bindparam("source"), _TABLE.c.delivery_id == bindparam("delivery_id")
)


def accept(incoming: Incoming):
    """Store the delivery, then hand it to the queue. No 2xx unless the row is committed.

    One statement on the way that matters: the row is inserted already marked `queued` (one
    attempt), since the enqueue right after it nearly always succeeds; only when it fails is
    the mark taken back to `pending`. The insert runs in autocommit (Services.writer): one
    statement is its own transaction, committed (on PostgreSQL, flushed to the WAL) before it
    returns, with no BEGIN and COMMIT round trips around it. A row left `queued` without a job
    (this process killed between its insert and its enqueue, or the database gone before the
    mark was taken back) is what relay puts back on the queue: it enqueues a queued row whose
    job Redis does not hold, as it does a pending one."""
    validate(incoming)
    svc = services()
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
        headers=safe_headers(),
        body=incoming.body,
        status=DeliveryStatus.QUEUED,
        queued_at=datetime.now(UTC),
        attempts=1,
    )
    try:
        try:
            stored = _store(svc, values)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A pooled connection the database dropped (say, it restarted): the engine has
            # thrown away its pool, and a fresh connection tries once more. There is no pool
            # pre-ping on this engine: that would cost a round trip on every request.
            stored = _store(svc, values)
        if stored is None:
            log.info("webhook.duplicate", source=incoming.source, delivery=incoming.delivery_id)
            return jsonify(delivery=incoming.delivery_id, status="duplicate"), 200
        row_id = stored
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

    status = _enqueue(svc, row_id, incoming)
    return jsonify(delivery=incoming.delivery_id, status=status), 202


def _store(svc, values: dict) -> int | None:
    """Insert the row; its id, or None when the delivery is already stored."""
    with svc.one_writer(), svc.writer().connect() as conn:
        try:
            return conn.execute(_INSERT, values).scalar_one()
        except IntegrityError:
            # The unique (source, delivery_id) key decides races between concurrent
            # redeliveries: exactly one insert wins, the others land here. (After a retry, the
            # first attempt's row may be the one found: committed, its answer lost on the way;
            # it is `queued` with no job, which relay enqueues.)
            keys = {"source": values["source"], "delivery_id": values["delivery_id"]}
            if conn.execute(_EXISTING, keys).scalar() is None:
                raise
            return None


class _Counted:
    """Takes the /metrics count of a queued webhook (metrics.count_queued: one HINCRBY by 1)
    to do it in the job's own script: the hash and its field."""

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self.counter = (key, field)


def _enqueue(svc, row_id: int, incoming: Incoming) -> str:
    try:
        script = svc.job_script()
        if script is not None:
            # The job and the webhook's count for /metrics: one command, one round trip.
            counted = _Counted()
            metrics.count_queued(counted, incoming.source)
            script.write(svc.redis(), row_id, count=counted.counter)
        else:
            with svc.redis().pipeline() as pipe:
                enqueue_delivery(svc.queue(), row_id, pipeline=pipe)
                metrics.count_queued(pipe, incoming.source)
                pipe.execute()
    except (RedisError, OSError) as exc:
        # Stored is enough to answer 2xx: `trackrecord relay` (and the worker) enqueue it later.
        log.warning(
            "webhook.redis_unavailable",
            source=incoming.source,
            delivery=incoming.delivery_id,
            error=type(exc).__name__,
        )
        _unmark_queued(svc, row_id, incoming)
        return DeliveryStatus.PENDING
    log.info(
        "webhook.queued",
        source=incoming.source,
        delivery=incoming.delivery_id,
        kind=incoming.event,
        team=incoming.team,
    )
    return DeliveryStatus.QUEUED


def _unmark_queued(svc, row_id: int, incoming: Incoming) -> None:
    """No job went on the queue: the row says so (`pending`, no attempt yet)."""
    try:
        with svc.one_writer(), svc.sessions() as session, session.begin():
            session.execute(
                update(Delivery)
                .where(Delivery.id == row_id, Delivery.status == DeliveryStatus.QUEUED)
                .values(status=DeliveryStatus.PENDING, queued_at=None, attempts=0)
            )
    except DBAPIError:
        # Left `queued` with no job in Redis: relay enqueues it all the same.
        log.warning("webhook.mark_pending_failed", delivery=incoming.delivery_id)


def ignored(incoming_delivery: str, reason: str):
    log.info("webhook.ignored", delivery=incoming_delivery, reason=reason)
    return jsonify(delivery=incoming_delivery, status="ignored", reason=reason), 200
