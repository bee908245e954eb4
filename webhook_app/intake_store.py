"""Store a checked delivery, then hand it to the queue: no 2xx unless the row is committed.

One statement on the way that matters: the row is inserted already marked `queued` (one
attempt), since the enqueue right after it nearly always succeeds; only when it fails is the
mark taken back to `pending`. The insert runs in autocommit (Services.writer): one statement is
its own transaction, committed (on PostgreSQL, flushed to the WAL) before it returns, with no
BEGIN and COMMIT round trips around it. A row left `queued` without a job (this process killed
between its insert and its enqueue, or the database gone before the mark was taken back) is
what relay puts back on the queue: it enqueues a queued row whose job Redis does not hold, as
it does a pending one.
"""

from __future__ import annotations

import weakref
from datetime import UTC, datetime

from redis.exceptions import RedisError
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from webhook_app import metrics
from webhook_app.intake import Incoming, safe_headers, validate
from workers import observe
from workers.enqueue import enqueue_delivery

log = get_logger("webhook_app")

_TABLE = Delivery.__table__
# Every column the insert sets; the others are left NULL. received_at is given too: its default
# is computed in Python, which the compiled statement below would not do.
_COLUMNS = (
    "source", "delivery_id", "event", "action", "source_key", "team", "verified_sources",
    "headers", "body", "status", "queued_at", "attempts", "received_at",
)  # fmt: skip
_EXISTING = select(_TABLE.c.id).where(
    _TABLE.c.source == bindparam("source"), _TABLE.c.delivery_id == bindparam("delivery_id")
)


class Insert:
    """The delivery's `INSERT … RETURNING id`, compiled once for an engine and run on a pooled
    DBAPI connection with the columns' own bind processors (JSON, dates, bytes), as SQLAlchemy
    runs it, without the statement cache lookup, execution context and result objects each
    execute builds: a tenth of an intake request's CPU. Failures are raised as SQLAlchemy's
    DBAPIError (IntegrityError for a duplicate), `connection_invalidated` when the database
    dropped the connection (its pool is then thrown away, as SQLAlchemy does)."""

    def __init__(self, engine: Engine):
        dialect = engine.dialect
        compiled = (
            insert(_TABLE)
            .returning(_TABLE.c.id)
            .compile(dialect=dialect, column_keys=list(_COLUMNS))
        )
        names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        if set(names) != set(_COLUMNS):  # a new column with a Python-side default, say
            raise RuntimeError(f"the deliveries insert binds {sorted(names)}, not {_COLUMNS}")
        self.engine = engine
        self.sql = compiled.string
        self.names = names
        self.positional = compiled.positional
        self.processors = [
            (name, _TABLE.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]

    def params(self, values: dict):
        row = [process(values[n]) if process else values[n] for n, process in self.processors]
        return row if self.positional else dict(zip(self.names, row, strict=True))

    def run(self, values: dict) -> int:
        params = self.params(values)
        dialect = self.engine.dialect
        raw = cursor = None
        try:
            raw = self.engine.raw_connection()
            cursor = raw.cursor()
            cursor.execute(self.sql, params)
            return cursor.fetchone()[0]
        except dialect.loaded_dbapi.Error as exc:
            dropped = raw is not None and dialect.is_disconnect(exc, raw, cursor)
            if dropped:
                raw.invalidate(exc)
                self.engine.dispose()  # the pool's other connections went with it
            raise DBAPIError.instance(
                self.sql,
                params,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=dropped,
                dialect=dialect,
            ) from exc
        finally:
            if cursor is not None:
                cursor.close()
            if raw is not None:
                raw.close()  # back to the pool (an invalidated one is let go)


# One compiled insert per engine (the intake's, per process and database).
_INSERTS: weakref.WeakKeyDictionary[Engine, Insert] = weakref.WeakKeyDictionary()


def _insert(engine: Engine) -> Insert:
    found = _INSERTS.get(engine)
    if found is None:
        found = _INSERTS[engine] = Insert(engine)
    return found


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
    try:
        try:
            stored = _store(svc, values)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A pooled connection the database dropped (say, it restarted): the pool is thrown
            # away, and a fresh connection tries once more. There is no pool pre-ping on this
            # engine: that would cost a round trip on every request.
            stored = _store(svc, values)
        if stored is None:
            log.info("webhook.duplicate", source=incoming.source, delivery=incoming.delivery_id)
            return 200, {"delivery": incoming.delivery_id, "status": "duplicate"}
    except DBAPIError as exc:
        log.error(
            "webhook.database_unavailable",
            source=incoming.source,
            delivery=incoming.delivery_id,
            error=type(exc.orig).__name__ if exc.orig else type(exc).__name__,
        )
        return 503, {
            "error": "database_unavailable",
            "message": "the delivery could not be stored; it was not accepted, please retry",
            "delivery": incoming.delivery_id,
        }
    status = _enqueue(svc, stored, incoming, call)
    return 202, {"delivery": incoming.delivery_id, "status": status}


def _store(svc, values: dict) -> int | None:
    """Insert the row; its id, or None when the delivery is already stored."""
    with svc.one_writer():
        try:
            return _insert(svc.writer()).run(values)
        except IntegrityError:
            # The unique (source, delivery_id) key decides races between concurrent
            # redeliveries: exactly one insert wins, the others land here. (After a retry, the
            # first attempt's row may be the one found: committed, its answer lost on the way;
            # it is `queued` with no job, which relay enqueues.)
            keys = {"source": values["source"], "delivery_id": values["delivery_id"]}
            with svc.writer().connect() as conn:
                if conn.execute(_EXISTING, keys).scalar() is None:
                    raise
            return None


class _Counted:
    """Takes the /metrics count of a queued webhook (observe.count_received: one HINCRBY by 1)
    to do it in the job's own script: the hash and its field."""

    def hincrby(self, key: str, field: str, amount: int = 1) -> None:
        self.counter = (key, field)


def _enqueue(svc, row_id: int, incoming: Incoming, call) -> str:
    labels = (incoming.source, metrics.event_label(incoming.source, call.event), "queued")
    try:
        script = svc.job_script()
        if script is not None:
            # The job and the webhook's count for /metrics: one command, one round trip.
            counted = _Counted()
            observe.count_received(counted, *labels)
            script.write(svc.redis(), row_id, count=counted.counter)
        else:
            with svc.redis().pipeline() as pipe:
                enqueue_delivery(svc.queue(), row_id, pipeline=pipe)
                observe.count_received(pipe, *labels)
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
    call.counted = True
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
