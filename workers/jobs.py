"""process_delivery: turn one stored webhook into ledger changes, exactly once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select, update

from connectors import team_config
from connectors.github import normalize as github
from connectors.jira import normalize as jira
from ledger import store
from trackrecord import payloads
from trackrecord.config import Config
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
    """Normalise the payload with its connector and apply the events to the ledger.

    Runs inside process_delivery's transaction, so the claim and the ledger writes commit
    together or not at all.
    """
    config = context.settings().config
    source = config.source(row.source, row.source_key) if row.source_key else None
    if row.source == "github" and source is not None:
        cfg = replace(github_config(config, source.team), received_at=_utc(row.received_at))
        events = github.normalize(row.event, doc, cfg)
        store.remember_members(session, source.team, "github", github.team_logins(doc))
    elif row.source == "jira" and (source is not None or row.source_key is None):
        # Sprint and version events (no project key) are keyed by their scope; the store fans
        # them out to the items that named it, whichever team owns them.
        # Each team's own story points field; site-wide events carry no story points.
        events = jira.normalize(doc, jira_config(config, source.team if source else None))
    else:
        # The source was listed when the delivery arrived and is not any more.
        log.warning("delivery.unknown_source", row=row.id, source=row.source, key=row.source_key)
        return
    if events:
        store.apply_events(session, config, source, events)


def github_config(config: Config, team: str | None = None) -> github.GithubConfig:
    """The team's size labels, and the configured Jira projects as link targets."""
    return team_config.github_config(config, team)


def jira_config(config: Config, team: str | None = None) -> jira.JiraConfig:
    """The team's story points field."""
    return team_config.jira_config(config, team)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back the naive UTC value it was given.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def settle_overdue_job() -> int:
    """Scheduled: pending commitments past their deadline become missed without a new event."""
    Session = context.sessions()
    with Session() as session, session.begin():
        return store.settle_overdue(session, datetime.now(UTC))


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
