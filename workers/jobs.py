"""process_delivery: turn one stored webhook into ledger changes, exactly once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select, update

from connectors import team_config
from connectors.directory import owner_of
from connectors.github import normalize as github
from connectors.jira import normalize as jira
from connectors.shapes import InvalidPayload
from ledger import store
from trackrecord import payloads
from trackrecord.config import source_index
from trackrecord.logs import get_logger
from trackrecord.models import Delivery, DeliveryStatus
from workers import context, milestone_summary, postback

log = get_logger("workers.jobs")


def process_delivery(delivery_row_id: int) -> str:
    """Claim and process a delivery in one transaction.

    The claim is an UPDATE ... WHERE status <> 'processed' inside the same transaction as the
    ledger writes: a second run of the same job (relay, RQ retry, redelivered id) waits on the
    row lock and then finds nothing to claim; a worker killed mid-job never commits, so the row
    stays claimable and nothing is half-applied.

    A payload that does not have the shape its connector reads (`InvalidPayload`) is a verdict,
    not a fault: the transaction is rolled back, so the ledger is as it was, the delivery is
    marked failed with the reason, and the job ends normally, so RQ does not retry it and the
    deliveries behind it go on.
    """
    Session = context.sessions()
    try:
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
            source, kind = row.source, row.event
            doc = payloads.decode(row.body, row.headers)
            handle(session, row, doc)
            posts = session.info.pop("postbacks", [])
            summaries = session.info.pop("summaries", [])
    except InvalidPayload as exc:
        _mark_invalid(Session, delivery_row_id, exc.reason)
        return "invalid"
    postback.enqueue(posts)  # only after the commit: the job must find its row
    milestone_summary.enqueue(summaries)
    log.info("delivery.processed", row=delivery_row_id, source=source, kind=kind)
    return "processed"


def _mark_invalid(Session, row_id: int, reason: str) -> None:
    with Session() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.id == row_id, Delivery.status != DeliveryStatus.PROCESSED)
            .values(status=DeliveryStatus.FAILED, error=f"invalid payload: {reason}"[:2000])
        )
    log.warning("delivery.invalid", row=row_id, reason=reason[:500])


def handle(session, row: Delivery, doc: dict) -> None:
    """Normalise the payload with its connector and apply the events to the ledger.

    Runs inside process_delivery's transaction, so the claim and the ledger writes commit
    together or not at all. The delivery changes only what its signature verified: items of its
    source's client (ledger.store checks each item), or, for a Jira sprint or version event,
    items of the projects using the secret that signed it (`row.verified_sources`).
    """
    config = context.settings().config
    source = config.source(row.source, row.source_key) if row.source_key else None
    if row.source_key and source is None:
        # The source was listed when the delivery arrived and is not any more.
        log.warning("delivery.unknown_source", row=row.id, source=row.source, key=row.source_key)
        return
    if source is not None and not _verified_for(row, source):
        # Intake stores only deliveries verified for their source; a row saying otherwise was
        # not written by it.
        log.warning("delivery.unverified_source", row=row.id, source=row.source, key=source.key)
        return
    reach = None
    if row.source == "github" and source is not None:
        # The team's size labels, and the configured Jira projects as link targets.
        cfg = team_config.github_config(config, source.team)
        cfg = replace(cfg, received_at=_utc(row.received_at))
        events = github.normalize(row.event, doc, cfg)
        store.remember_members(session, source.team, "github", github.team_logins(doc))
    elif row.source == "jira":
        # Sprint and version events (no project key) are keyed by their scope; the store fans
        # them out to the items that named it among the projects the signature verified.
        # Each team's own story points field; site-wide events carry no story points.
        cfg = team_config.jira_config(config, source.team if source else None)
        events = jira.normalize(doc, cfg)
        if source is None:
            reach = _site_wide_reach(config, row)
    else:
        log.warning("delivery.unknown_source", row=row.id, source=row.source, key=row.source_key)
        return
    touched: set[str] = set()
    if events:
        # Settlements that arrive by webhook get a comment (issue 9); backfill and
        # reconciliation call store.apply_events directly and never post about the past.
        touched = postback.apply_and_record(
            session, context.directory(), owner_of(source), events, reach=reach
        )
    # The living summaries of the scopes touched (and of a closed milestone), issue 9.
    milestone_summary.record(session, touched, row, doc, source.team if source else None)


def _verified_for(row: Delivery, source) -> bool:
    if row.verified_sources is None:
        return True  # stored before 0006, when intake checked the source's own secret
    want = source_index(source.kind, source.key)
    return any(source_index(row.source, key) == want for key in row.verified_sources)


def _site_wide_reach(config, row: Delivery) -> set[tuple[str, str]]:
    """The Jira projects a sprint or version delivery may reach: those its signature verified.
    A row stored before 0006 was verified with the global Jira secret, so: the projects that
    use it (no `secret_env` of their own)."""
    if row.verified_sources is None:
        keys = [s.key for s in config.sources("jira") if s.secret_env is None]
    else:
        keys = [k for k in row.verified_sources if config.source("jira", k) is not None]
    return {source_index("jira", key) for key in keys}


def _utc(moment: datetime) -> datetime:
    # SQLite hands back the naive UTC value it was given.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
