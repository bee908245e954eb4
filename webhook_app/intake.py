"""What both webhook routes share: bounded body reading and the checks before anything is
written (webhook_app.intake_store stores and enqueues).

The order is fixed and each step has its own answer (as in Sentry's webhook views): size,
content type, headers, signature, JSON, event, source, and values that fit their columns;
only then is anything written. Every refusal is a 4xx, so a sender does not retry it; a 5xx
means a fault here (the database down) that a retry can outlast. The routes get the request
from webhook_app.front (a werkzeug Request, without Flask's request context).
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass

from gunicorn.http.errors import ParseException
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request

from trackrecord import payloads
from trackrecord.logs import get_logger
from trackrecord.models import Delivery
from webhook_app.errors import Rejected

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


def read_body(request: Request, max_bytes: int) -> bytes:
    """Refuse an oversized body from its Content-Length alone, before reading it; a chunked one
    is read up to the limit and no further. Read it within READ_SECONDS (408 otherwise), and
    answer a body that is cut short or badly framed with a 400, never a 500."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise Rejected(413, "payload_too_large", f"body of {length} bytes exceeds {max_bytes}")
    try:
        body = _read(request, max_bytes + 1)
    except TimeoutError:
        _abandon_connection(request)
        raise Rejected(
            408,
            "request_timeout",
            f"the body did not arrive within {READ_SECONDS:g} s "
            f"(or stalled for {IDLE_SECONDS:g} s)",
        ) from None
    except ParseException as exc:  # gunicorn: a bad chunk size, extension or terminator
        _abandon_connection(request)
        raise Rejected(400, "malformed_body", f"the chunked body is malformed: {exc}") from None
    except (OSError, ClientDisconnected):  # the stream ended before the body did
        _abandon_connection(request)
        raise Rejected(400, "incomplete_body", "the body ended before it was complete") from None
    if len(body) > max_bytes:
        raise Rejected(413, "payload_too_large", f"body exceeds {max_bytes} bytes")
    if length is not None and len(body) < length:
        # The sender closed its side early: gunicorn hands back what came, without an error.
        _abandon_connection(request)
        raise Rejected(
            400,
            "incomplete_body",
            f"the body has {len(body)} bytes, its Content-Length says {length}",
        )
    if not body:
        raise Rejected(400, "empty_body", "the request has no body")
    return body


def _read(request: Request, size: int) -> bytes:
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


def _abandon_connection(request: Request) -> None:
    """The rest of this connection cannot be trusted (the body's end is unknown): gunicorn
    closes a connection whose body reader is marked failed, instead of draining the unread
    body at the sender's pace before reading another request from it."""
    stream = request.environ.get("wsgi.input")
    if hasattr(stream, "failed"):
        stream.failed = True


def require_content_type(request: Request, allowed: tuple[str, ...]) -> str:
    mimetype = request.mimetype
    if mimetype not in allowed:
        shown = mimetype or "none"
        raise Rejected(
            415,
            "unsupported_media_type",
            f"content type {shown!r} is not accepted; send {' or '.join(allowed)}",
        )
    return mimetype


def require_header(request: Request, name: str) -> str:
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


# Read once: a column's length looked up through the table on every request cost more than the
# checks themselves.
_LENGTHS = {name: Delivery.__table__.c[name].type.length for name in _CHECKED}


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
        limit = _LENGTHS[name]
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


def safe_headers(request: Request) -> dict[str, str]:
    kept = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP_HEADERS]
    if "".join(k + v for k, v in kept).isprintable():  # nearly always: one check, not two a header
        return dict(kept)
    return {_printable(k): _printable(v) for k, v in kept}


def ignored(delivery: str, reason: str) -> tuple[int, dict]:
    log.info("webhook.ignored", delivery=delivery, reason=reason)
    return 200, {"delivery": delivery, "status": "ignored", "reason": reason}
