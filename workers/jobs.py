"""process_delivery: turn one stored webhook into ledger changes, exactly once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import structlog
from rq import get_current_job
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from connectors.shapes import InvalidPayload
from ledger import store
from trackrecord import payloads
from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from trackrecord.queue import drop_taken, get_queue, run_alone, take_waiting
from workers import context, milestone_summary, postback
from workers.batch_plan import pick, plan
from workers.delivery_apply import apply_rows, handle

log = get_logger("workers.jobs")


# One job drains up to BATCH deliveries: its own, then those whose jobs wait behind it on the
# queue, taken off it (trackrecord.queue.take_waiting). RQ's own bookkeeping costs about 3 ms
# a job on this machine, more than applying a delivery, so one job for many is what lets a
# worker drain more than RQ runs jobs. 200: enough to fill PostgreSQL's transactions (below),
# and 2,000 queued deliveries still make ten batches for two workers to share.
BATCH = 200
# A batch stops after this long; the deliveries it has not reached go back on the queue.
BATCH_SECONDS = 20.0
# SQLite: up to this many deliveries to a transaction (Batch.together), applied together by
# the ledger (workers.delivery_apply.apply_rows), in arrival order; it has one writer anyway,
# and holds the write lock for a few tens of milliseconds, so the intake's inserts wait that
# long at most. PostgreSQL: the ledger locks a milestone while it writes to it (ledger.
# store_common.lock_scopes), so the batch is cut into chunks of up to TOGETHER deliveries of
# one milestone, and a transaction takes as many chunks as fit in batch_plan.MERGE whose
# milestones no other worker holds at that moment (workers.batch_plan).
TOGETHER = 20
JOB_PREFIX = "delivery-"
# Set by the worker on SIGTERM (workers.runner): a batch takes nothing more off the queue and
# stops after the delivery (on SQLite, the transaction) in hand; the rest go back on the queue.
STOP = threading.Event()


def job_id(delivery_row_id: int) -> str:
    # RQ job ids allow letters, digits, '-' and '_' only; the row id is unique and stable.
    return f"{JOB_PREFIX}{delivery_row_id}"


def process_delivery(delivery_row_id: int) -> str:
    """Claim and process a delivery, then the deliveries queued behind it, each exactly once.

    The claim is an UPDATE ... WHERE status <> 'processed' inside the same transaction as the
    ledger writes: a second run of the same job (relay, RQ retry, redelivered id) waits on the
    row lock and then finds nothing to claim; a worker killed mid-job never commits that
    delivery, so it stays claimable and nothing is half-applied (the jobs it took off the
    queue are marked started by it, so relay enqueues them again once it stops beating).

    A payload that does not have the shape its connector reads (`InvalidPayload`) is a verdict,
    not a fault: the transaction is rolled back, so the ledger is as it was, the delivery is
    marked failed with the reason, and the job goes on. Any other fault of the job's own
    delivery fails the job (RQ retries it, then the failed registry); of a delivery taken into
    the batch, sends that one back to the queue to run as its own job.
    """
    batch = Batch(context.sessions())
    outcome = batch.one(delivery_row_id)
    if outcome in ("processed", "invalid"):
        batch.run()
    batch.finish()
    return outcome


def _claim(session, rows: list[Delivery]) -> list[Delivery]:
    """Claim `rows` in one UPDATE, in the caller's transaction: those it claimed, in order."""
    table = Delivery.__table__  # Core: the ORM's bulk UPDATE steps cost more than the UPDATE
    claimed = set(
        session.scalars(
            update(table)
            .where(table.c.id.in_([r.id for r in rows]))
            .where(table.c.status != DeliveryStatus.PROCESSED)
            .values(status=DeliveryStatus.PROCESSED, processed_at=datetime.now(UTC), error=None)
            .returning(table.c.id)
        )
    )
    for row in rows:
        if row.id not in claimed:
            log.info("delivery.skip", row=row.id, outcome="already_processed")
    return [row for row in rows if row.id in claimed]


def _log_processed(row: Delivery) -> None:
    log.info("delivery.processed", row=row.id, delivery=row.delivery_id, source=row.source,
             kind=row.event)  # fmt: skip


def _forget(left: list[int], rows: list[Delivery]) -> None:
    done = {row.id for row in rows}
    left[:] = [i for i in left if i not in done]


def _mark_invalid(Session, row_id: int, reason: str) -> None:
    with Session() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.id == row_id, Delivery.status != DeliveryStatus.PROCESSED)
            .values(status=DeliveryStatus.FAILED, error=f"invalid payload: {reason}"[:2000])
        )
    log.warning("delivery.invalid", row=row_id, reason=reason[:500])


class Batch:
    """One job's deliveries: its own, then those it takes from the queue, up to TOGETHER to a
    transaction: on SQLite in arrival order, on PostgreSQL one milestone's to a transaction
    (`delivery_apply.plan`), each item's deliveries in arrival order either way (the ledger
    folds each item's events in event-time order whatever order they are stored in)."""

    def __init__(self, Session):
        self.Session = Session
        self.redis = self.queue = None
        self.back: list[int] = []  # taken, not finished here: enqueued again
        self.alone: list[int] = []  # taken and failed here: run as their own jobs
        self.posts: list[int] = []  # postback rows, enqueued once the batch is over
        self.summaries: list = []
        self.done: list[str] = []  # taken jobs finished here: their hashes are dropped

    def one(self, row_id: int, row: Delivery | None = None) -> str:
        try:
            with self.Session() as session, session.begin():
                outcome, row = self._apply(session, row_id, row)
                posts = session.info.pop("postbacks", [])
                summaries = session.info.pop("summaries", [])
        except InvalidPayload as exc:  # rolled back: the claim and whatever was written
            _mark_invalid(self.Session, row_id, exc.reason)
            return "invalid"
        if outcome == "processed":
            self.posts += posts
            self.summaries += summaries
            _log_processed(row)
        return outcome

    def together(self, rows, prepared=None, choose=None) -> tuple[list[Delivery], bool]:
        """Claim and apply `rows` in one transaction, the ledger applying them together
        (`delivery_apply.apply_rows`; `prepared`: those `plan` has normalised), or, given
        `choose`, the rows it chooses in the transaction (`batch_plan.pick`, which takes their
        locks). All or nothing: on any fault nothing of them is committed, and the caller
        applies them one by one, so one bad delivery costs the others only a second try and
        no delivery is lost or doubled. Returns the rows and whether they were applied."""
        taken = list(rows)
        try:
            with self.Session() as session, session.begin():
                if choose is not None:
                    taken = choose(session)
                done = _claim(session, taken)
                apply_rows(session, done, prepared)
                posts = session.info.pop("postbacks", [])
                summaries = session.info.pop("summaries", [])
        except (JobTimeoutException, OperationalError, InterfaceError):
            raise  # out of time, or the database is away: the batch stops here
        except Exception as exc:
            log.info("delivery.together_failed", rows=len(taken), error=type(exc).__name__)
            return taken, False
        self.posts += posts
        self.summaries += summaries
        for row in done:
            _log_processed(row)
        return taken, True

    def _apply(self, session, row_id: int, row: Delivery | None) -> tuple[str, Delivery | None]:
        """The claim and the ledger writes of one delivery, in the caller's transaction."""
        claimed = session.execute(
            update(Delivery)
            .where(Delivery.id == row_id, Delivery.status != DeliveryStatus.PROCESSED)
            .values(status=DeliveryStatus.PROCESSED, processed_at=datetime.now(UTC), error=None)
        ).rowcount
        if not claimed:
            exists = session.scalar(select(Delivery.id).where(Delivery.id == row_id))
            outcome = "already_processed" if exists else "missing"
            log.info("delivery.skip", row=row_id, outcome=outcome)
            return outcome, row
        row = row if row is not None else session.get(Delivery, row_id)
        # Every line logged while it is applied names the sender's delivery id too.
        with structlog.contextvars.bound_contextvars(delivery=row.delivery_id, row=row_id):
            handle(session, row, payloads.decode(row.body, row.headers))
        return "processed", row

    def run(self) -> None:
        job = get_current_job()
        if job is None or STOP.is_set():  # not run by a worker, or it is stopping
            return
        self.redis, self.queue = job.connection, get_queue(job.connection, job.origin)
        worker = job.worker_name or ""
        ids = take_waiting(self.redis, self.queue, JOB_PREFIX, BATCH - 1, worker)
        taken = sorted(int(i.removeprefix(JOB_PREFIX)) for i in ids)
        if not taken:
            return
        deadline = time.monotonic() + BATCH_SECONDS
        try:
            with self.Session() as session:  # the stored deliveries never change: one read
                rows = session.scalars(
                    select(Delivery).where(Delivery.id.in_(taken)).order_by(Delivery.id)
                ).all()
        except BaseException:
            self.back += taken
            raise
        left = [row.id for row in rows]
        try:
            if self.Session.kw["bind"].dialect.name == "sqlite":
                self._in_order(rows, left, deadline)
            else:
                self._planned(rows, left, deadline)
        finally:
            self.back += left
        self.done = [job_id(i) for i in taken if i not in left and i not in self.alone]
        log.info("delivery.batch", taken=len(taken), back=len(left), alone=len(self.alone))

    def _in_order(self, rows: list[Delivery], left: list[int], deadline: float) -> None:
        """SQLite, one writer: TOGETHER to a transaction in arrival order, normalised in it."""
        for start in range(0, len(rows), TOGETHER):
            chunk = rows[start : start + TOGETHER]
            if time.monotonic() > deadline or STOP.is_set():
                return
            try:
                if len(chunk) > 1 and self.together(chunk)[1]:
                    _forget(left, chunk)
                    continue
            except (JobTimeoutException, OperationalError, InterfaceError):
                return  # out of time, or the database is away: the rest go back as they were
            if not self._each(chunk, left, deadline):
                return

    def _planned(self, rows: list[Delivery], left: list[int], deadline: float) -> None:
        """PostgreSQL: transactions filled by `batch_plan.pick`, segment after segment."""
        segments, prepared = plan(rows, TOGETHER)
        for pending in segments:
            while pending:
                if time.monotonic() > deadline or STOP.is_set():
                    return
                if pending[0].alone:
                    if not self._each(pending.pop(0).rows, left, deadline):
                        return
                    continue
                try:
                    chunk, ok = self.together((), prepared, lambda s, p=pending: pick(s, p))
                except (JobTimeoutException, OperationalError, InterfaceError):
                    return
                if ok:
                    _forget(left, chunk)
                elif not chunk or not self._each(chunk, left, deadline):
                    return  # (no chunk: the locks themselves failed; the rest go back)

    def _each(self, rows: list[Delivery], left: list[int], deadline: float) -> bool:
        """Each row in its own transaction; False when the batch must stop."""
        for row in rows:
            if time.monotonic() > deadline or STOP.is_set():
                return False
            try:
                self.one(row.id, row)
            except (JobTimeoutException, OperationalError, InterfaceError):
                return False  # out of time, or the database is away: the rest go back
            except Exception as exc:
                self.alone.append(row.id)
                log.warning("delivery.batch_failed", row=row.id, error=type(exc).__name__)
            left.remove(row.id)
        return True

    def finish(self) -> None:
        """After the last commit: comments and summaries to enqueue, deliveries to put back."""
        for row_id in self.alone:
            run_alone(self.redis, job_id(row_id))
        if self.done:
            drop_taken(self.redis, self.done)
        self._enqueue(self.back + self.alone)
        postback.enqueue(self.posts)
        milestone_summary.enqueue(self.summaries)

    def _enqueue(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        from workers.enqueue import enqueue_delivery

        try:
            for row_id in row_ids:
                enqueue_delivery(self.queue, row_id)
        except Exception as exc:  # Redis gone: relay finds them (Redis holds no job for them)
            log.warning("delivery.put_back_failed", rows=len(row_ids), error=type(exc).__name__)


def settle_overdue_job() -> int:
    """Scheduled: pending commitments past their deadline become missed without a new event."""
    Session = context.sessions()
    now = datetime.now(UTC)
    with Session() as session, session.begin():
        overdue = postback.overdue_before(session, now)
        settled = store.settle_overdue(session, now)
        posts = postback.record_missed(session, overdue)
    postback.enqueue(posts)
    return settled


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
