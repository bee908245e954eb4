"""Group commit for the intake: the webhook requests a serving process holds at one moment
share one insert, one commit and one Redis command.

Why: under load each request's own INSERT, commit (a WAL flush on PostgreSQL) and EVALSHA
were a third of the intake's CPU, split between the serving process's database and Redis
clients and the servers. Nothing waits to fill a group: the first request to arrive writes
at once, alone; the requests that arrive while its writes are in flight form the next group,
written by the first of them as soon as the previous group is done (a gevent worker's other
greenlets run while one waits on the database). So a quiet server writes one row at a time, as
before, and a busy one writes as many rows a statement as it has requests waiting.

What each request gets is what it got alone: its row committed before it is answered, a
duplicate answered as one, 503 when the database fails, `pending` when Redis does. A row the
database refuses on its own account (not the connection or a lock) fails only its own request:
a group that fails so is written again one row at a time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError, OperationalError

from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from webhook_app.intake_rows import rows_for
from workers import observe
from workers.enqueue import enqueue_delivery

log = get_logger("webhook_app")

LIMIT = 50  # rows a statement at most: a bound on one statement's size and time

STORED_QUEUED, STORED_PENDING, DUPLICATE, FAILED = "queued", "pending", "duplicate", "failed"


@dataclass(eq=False)
class Entry:
    """One request's delivery: its row's values, the /metrics count its job carries, and once
    written, its outcome (and row id, or the database's error)."""

    values: dict
    count: tuple[str, str, str]  # observe.count_received's labels
    outcome: str | None = None
    row_id: int | None = None
    error: DBAPIError | None = None  # the database's refusal (FAILED)
    redis_error: str | None = None  # why its job is not queued (STORED_PENDING)
    lead: bool = False  # handed the writing of the next group
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> tuple[str, str]:
        return self.values["source"], self.values["delivery_id"]


class Group:
    """One per serving process (Services.group), made in the worker process after gevent has
    patched `threading`: waiting on an Event then lets the other greenlets run."""

    def __init__(self, svc):
        self.svc = svc
        self._lock = threading.Lock()
        self._waiting: list[Entry] = []
        self._busy = False

    def write(self, entry: Entry) -> Entry:
        with self._lock:
            self._waiting.append(entry)
            entry.lead = not self._busy
            self._busy = True
        if not entry.lead:
            try:
                entry.done.wait()
            except BaseException:  # killed while it waited (its greenlet, at shutdown)
                self._leave(entry)
                raise
        if entry.lead:  # the first to arrive, or handed the next group
            self._lead(entry)
        return entry

    def _leave(self, entry: Entry) -> None:
        with self._lock:
            if entry in self._waiting:
                self._waiting.remove(entry)
            handed = entry.lead  # handed the next group as it was stopped: pass it on
        if handed:
            self._next()

    def _next(self) -> None:
        """The group just written is done: the first request still waiting writes the next."""
        with self._lock:
            if self._waiting:
                following = self._waiting[0]
                following.lead = True
                following.done.set()
            else:
                self._busy = False

    def _lead(self, own: Entry) -> None:
        batch: list[Entry] = []
        try:
            # First let the requests that are ready to join do so: under gevent sleep(0) runs
            # them up to their own `write`. SQLite's insert never yields to them, so without
            # this its groups were nearly all of one row (1.15 rows a statement under 16
            # connections, 1.5 with it, and 5-8% more requests a second); PostgreSQL's were
            # 3.5 either way.
            time.sleep(0)
            with self._lock:
                batch, self._waiting = self._waiting[:LIMIT], self._waiting[LIMIT:]
            _write(self.svc, batch)
        finally:
            # Whatever happened, every request of the group is answered and the next group
            # gets a writer: a request left waiting here would wait for ever.
            for entry in batch:
                entry.lead = False
                entry.done.set()
            with self._lock:
                if own in self._waiting:  # stopped before it took its group: it leaves
                    self._waiting.remove(own)
            self._next()


def _write(svc, batch: list[Entry]) -> None:
    first: dict[tuple[str, str], Entry] = {}
    copies: list[tuple[Entry, Entry]] = []  # the same delivery twice in one group: one row
    for entry in batch:
        if entry.key in first:
            copies.append((entry, first[entry.key]))
        else:
            first[entry.key] = entry
    entries = list(first.values())
    try:
        _store(svc, entries)
        _enqueue(svc, [e for e in entries if e.outcome is None and e.row_id is not None])
    finally:
        # A copy is a duplicate only once its first is stored: if that failed, so does the copy
        # (its sender retries), and if the writer itself failed, the copy has no outcome either.
        for copy, original in copies:
            if original.outcome in (None, FAILED):
                copy.outcome, copy.error = original.outcome, original.error
            else:
                copy.outcome = DUPLICATE


def _store(svc, entries: list[Entry]) -> None:
    try:
        _insert(svc, entries)
    except DBAPIError as exc:
        if len(entries) == 1 or _unavailable(exc):
            _fail(entries, exc)
            return
        for i, entry in enumerate(entries):  # a row the database refuses fails only its request
            try:
                _insert(svc, [entry])
            except DBAPIError as alone:
                if _unavailable(alone):  # the database went away meanwhile: no more tries
                    _fail(entries[i:], alone)
                    return
                _fail([entry], alone)


def _unavailable(exc: DBAPIError) -> bool:
    """The database (or SQLite's lock) failed, not a row: every row of the group would fail."""
    return isinstance(exc, OperationalError) or exc.connection_invalidated


def _fail(entries: list[Entry], exc: DBAPIError) -> None:
    for entry in entries:
        entry.outcome, entry.error = FAILED, exc


def _insert(svc, entries: list[Entry]) -> None:
    # Alone: the group is the process's only writer of deliveries (SQLite takes one at a time).
    ids = rows_for(svc.writer()).insert([entry.values for entry in entries])
    for entry in entries:
        entry.row_id = ids.get(entry.key)
        if entry.row_id is None:
            # Stored already. (After a retry on a dropped connection, the first attempt's row
            # may be the one found: committed, its answer lost; it is `queued` with no job,
            # which relay enqueues.)
            entry.outcome = DUPLICATE


def _enqueue(svc, entries: list[Entry]) -> None:
    if not entries:
        return
    try:
        script = svc.job_script()
        if script is not None:
            # Every job and its webhook's count for /metrics: one command, one round trip.
            counts = [(e.row_id, observe.received_field(*e.count)) for e in entries]
            script.write_many(svc.redis(), counts)
        else:
            with svc.redis().pipeline() as pipe:
                for entry in entries:
                    enqueue_delivery(svc.queue(), entry.row_id, pipeline=pipe)
                    observe.count_received(pipe, *entry.count)
                pipe.execute()
    except (RedisError, OSError) as exc:
        # Stored is enough to answer 2xx: `trackrecord relay` (and the worker) enqueue them.
        for entry in entries:
            entry.redis_error = type(exc).__name__
        _unmark_queued(svc, entries)
        return
    for entry in entries:
        entry.outcome = STORED_QUEUED


def _unmark_queued(svc, entries: list[Entry]) -> None:
    """No job went on the queue: the rows say so (`pending`, no attempt yet)."""
    for entry in entries:
        entry.outcome = STORED_PENDING
    ids = [e.row_id for e in entries]
    try:
        with svc.sessions() as session, session.begin():
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.QUEUED)
                .values(status=DeliveryStatus.PENDING, queued_at=None, attempts=0)
            )
    except DBAPIError:
        # Left `queued` with no job in Redis: relay enqueues them all the same.
        log.warning(
            "webhook.mark_pending_failed", deliveries=[e.values["delivery_id"] for e in entries]
        )
