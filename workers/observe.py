"""What is true right now, read from the database and Redis at the moment of asking: the one
home of the readings behind /metrics (webhook_app.metrics) and `trackrecord status`.

Nothing here counts in process memory: the web runs several gunicorn processes and the
workers others, so a per-process counter would be one process's share. The database holds
what was stored (deliveries, comments, report sends); Redis holds the queues, the workers and
the intake outcomes the database never sees (duplicates, ignored and rejected requests).

Every query is bounded: counts over indexed status columns, the backlog (not the history)
grouped by source and event, and a sample of the latest finished jobs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Worker
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from ledger.postbacks import Postback
from trackrecord.models import Delivery, DeliveryStatus, SyncState
from trackrecord.queue import WORKER_STALE_SECONDS, worker_is_alive

# Intake outcomes, one hash field per (source, event, outcome, reason); HINCRBY is atomic
# across every web process. Labels come from closed sets (see webhook_app.metrics), so the
# hash stays small whatever senders put in their headers.
RECEIVED_KEY = "trackrecord:metrics:received"
_SEP = "\t"
UNPROCESSED = (DeliveryStatus.PENDING, DeliveryStatus.QUEUED, DeliveryStatus.FAILED)
WAITING = (DeliveryStatus.PENDING, DeliveryStatus.QUEUED)
# Latest finished (and failed) jobs read per queue for the duration figures.
DURATION_SAMPLE = 200
REPORT_SENDS = "report_sends"  # the reports helper's table; read only where it exists
_REGISTRIES = {
    "started": StartedJobRegistry,
    "failed": FailedJobRegistry,
    "deferred": DeferredJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "finished": FinishedJobRegistry,
}


def received_field(source: str, event: str, outcome: str, reason: str = "") -> tuple[str, str]:
    """The hash and field that count a webhook with these labels."""
    return RECEIVED_KEY, _SEP.join((source, event, outcome, reason))


def count_received(redis: Redis, source: str, event: str, outcome: str, reason: str = "") -> None:
    redis.hincrby(*received_field(source, event, outcome, reason), 1)


def received(redis: Redis) -> dict[tuple[str, str, str, str], int]:
    out = {}
    for name, value in redis.hgetall(RECEIVED_KEY).items():
        parts = name.decode().split(_SEP)
        if len(parts) == 4:
            out[tuple(parts)] = int(value)
    return out


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back the naive UTC value it was given.
    if moment is None or moment.tzinfo:
        return moment
    return moment.replace(tzinfo=UTC)


@dataclass
class DatabaseReading:
    deliveries: dict[str, int]  # status -> rows
    unprocessed: dict[tuple[str, str, str], int]  # (source, event, status) -> rows
    oldest_waiting: datetime | None  # received_at of the oldest pending or queued delivery
    comments: dict[str, int]  # postback status -> rows
    report_sends: dict[str, int] | None  # status -> rows; None when the table does not exist
    last_report: datetime | None = None
    last_reconcile: datetime | None = None


def read_database(session: Session, *, history: bool = False) -> DatabaseReading:
    """Counts by status use ix_deliveries_status; the backlog query reaches only unprocessed
    rows. `history` adds the last reconcile and report run (for `trackrecord status`)."""
    by_status = dict(
        session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    )
    unprocessed = {
        (source, event, status): n
        for source, event, status, n in session.execute(
            select(Delivery.source, Delivery.event, Delivery.status, func.count())
            .where(Delivery.status.in_(UNPROCESSED))
            .group_by(Delivery.source, Delivery.event, Delivery.status)
        ).all()
    }
    oldest = session.scalar(
        select(func.min(Delivery.received_at)).where(Delivery.status.in_(WAITING))
    )
    comments = dict(
        session.execute(select(Postback.status, func.count()).group_by(Postback.status)).all()
    )
    reading = DatabaseReading(
        deliveries={s: by_status.get(s, 0) for s in DeliveryStatus.ALL},
        unprocessed=unprocessed,
        oldest_waiting=_utc(oldest),
        comments=comments,
        report_sends=None,
    )
    _read_report_sends(session, reading)
    if history:
        reading.last_reconcile = _last_reconcile(session)
    return reading


def _read_report_sends(session: Session, reading: DatabaseReading) -> None:
    """The reports helper's `report_sends` table, read through whatever of `status` and a send
    time it has: this module must not break while that table is being designed."""
    inspector = inspect(session.connection())
    if not inspector.has_table(REPORT_SENDS):
        return
    columns = {c["name"] for c in inspector.get_columns(REPORT_SENDS)}
    if "status" in columns:
        rows = session.execute(
            text(f"SELECT status, COUNT(*) FROM {REPORT_SENDS} GROUP BY status")
        ).all()
        reading.report_sends = {str(status): n for status, n in rows}
    else:
        total = session.scalar(text(f"SELECT COUNT(*) FROM {REPORT_SENDS}"))
        reading.report_sends = {"sent": total}
    when = next((c for c in ("sent_at", "created_at", "started_at") if c in columns), None)
    if when is not None:
        last = session.scalar(text(f"SELECT MAX({when}) FROM {REPORT_SENDS}"))
        if isinstance(last, str):  # SQLite without the column's type at hand
            last = datetime.fromisoformat(last)
        reading.last_report = _utc(last)


def _last_reconcile(session: Session) -> datetime | None:
    # Reconciliation records where its look at each GitHub hook's deliveries began.
    from workers.reconcile import HOOK_SYNC_SOURCE

    last = session.scalar(
        select(func.max(SyncState.updated_at)).where(SyncState.source == HOOK_SYNC_SOURCE)
    )
    return _utc(last)


@dataclass
class JobDurations:
    seconds: list[float] = field(default_factory=list)

    def quantiles(self) -> dict[str, float]:
        values = sorted(self.seconds)
        if not values:
            return {}
        if len(values) == 1:
            return {"0.5": values[0], "0.9": values[0], "0.99": values[0], "1": values[0]}
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return {"0.5": cuts[49], "0.9": cuts[89], "0.99": cuts[98], "1": values[-1]}


@dataclass
class RedisReading:
    queues: dict[str, dict[str, int]]  # queue -> state -> jobs
    workers_alive: int
    workers_stale: int
    durations: dict[tuple[str, str], JobDurations]  # (function, "finished"|"failed")
    received: dict[tuple[str, str, str, str], int]


def read_redis(redis: Redis, queue_names: tuple[str, ...] = ()) -> RedisReading:
    """Every queue RQ knows of (and `queue_names`, even before a job made RQ register them)."""
    names = sorted({q.name for q in Queue.all(connection=redis)} | set(queue_names))
    queues: dict[str, dict[str, int]] = {}
    durations: dict[tuple[str, str], JobDurations] = {}
    for name in names:
        queue = Queue(name, connection=redis)
        states = {"queued": queue.count}
        for state, registry_class in _REGISTRIES.items():
            registry = registry_class(name, connection=redis)
            # No clean-up on read: a scrape must not move jobs between registries.
            states[state] = registry.get_job_count(cleanup=False)
            if state in ("finished", "failed"):
                ids = registry.get_job_ids(0, DURATION_SAMPLE - 1, desc=True, cleanup=False)
                _sample_durations(redis, ids, state, durations)
        queues[name] = states
    alive = stale = 0
    for key in Worker.all_keys(connection=redis):
        name = key.removeprefix(Worker.redis_worker_namespace_prefix)
        if worker_is_alive(redis, name, WORKER_STALE_SECONDS):
            alive += 1
        else:
            stale += 1
    return RedisReading(queues, alive, stale, durations, received(redis))


def _sample_durations(redis: Redis, ids: list[str], outcome: str, into: dict) -> None:
    """started_at and ended_at of each job, by the function its description names."""
    if not ids:
        return
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(Queue.job_class.key_for(job_id), "description", "started_at", "ended_at")
    for description, started, ended in pipe.execute():
        if not (description and started and ended):
            continue
        function = description.decode().split("(", 1)[0].rsplit(".", 1)[-1] or "unknown"
        try:
            seconds = (_parse(ended) - _parse(started)).total_seconds()
        except ValueError:
            continue
        into.setdefault((function, outcome), JobDurations()).seconds.append(max(seconds, 0.0))


def _parse(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))
