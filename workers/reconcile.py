"""reconcile_source: heal what GitHub failed to deliver.

GitHub never retries a failed webhook delivery by itself. For each repository with a hook id,
this lists the hook's recent deliveries and asks GitHub to redeliver the ones that failed and
never succeeded since (and that we have not stored under the same GUID). Redelivered requests
arrive through the ordinary webhook route, so they are verified and deduplicated like any other.
https://docs.github.com/en/webhooks/using-webhooks/handling-failed-webhook-deliveries
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connectors.github_api import GithubNotConfigured, github_client
from trackrecord.logs import get_logger
from trackrecord.models import Delivery, SyncState
from webhook_app.github import SUPPORTED_EVENTS
from workers import context

log = get_logger("workers.reconcile")

# GitHub keeps hook deliveries for a few days; looking back further finds nothing anyway.
DEFAULT_LOOKBACK = timedelta(days=3)


def reconcile_all() -> dict[str, dict]:
    results = {}
    for source in context.settings().config.sources("github"):
        if source.hook_id is None:
            continue
        try:
            results[source.key] = reconcile_source("github", source.key)
        except GithubNotConfigured as exc:
            log.warning("reconcile.not_configured", repo=source.key, reason=str(exc))
            results[source.key] = {"error": str(exc)}
    return results


def reconcile_source(kind: str, key: str) -> dict:
    if kind != "github":
        # Jira retries failed deliveries itself (and backfill re-reads it); nothing to ask for.
        return {"redelivered": 0, "skipped": "jira retries its own deliveries"}
    settings = context.settings()
    source = settings.config.source("github", key)
    if source is None or source.hook_id is None:
        return {"redelivered": 0, "skipped": "no hook_id configured"}
    Session = context.sessions()
    with Session() as session:
        state = session.scalar(
            select(SyncState).where(SyncState.source == "github-hook", SyncState.key == key)
        )
        since = state.last_synced_at if state and state.last_synced_at else None
    started = datetime.now(UTC)
    since = since or started - DEFAULT_LOOKBACK
    if since.tzinfo is None:  # SQLite returns naive datetimes; they were stored as UTC
        since = since.replace(tzinfo=UTC)

    gh = github_client(key)
    repo = gh.get_repo(key)
    succeeded: set[str] = set()
    failed: dict[str, int] = {}
    # Newest first: a GUID that later succeeded (a manual redelivery) needs nothing.
    for summary in repo.get_hook_deliveries(source.hook_id):
        delivered_at = summary.delivered_at
        if delivered_at and delivered_at.replace(tzinfo=delivered_at.tzinfo or UTC) < since:
            break
        if summary.event not in SUPPORTED_EVENTS:
            continue
        if summary.status_code and 200 <= summary.status_code < 300:
            succeeded.add(summary.guid)
        elif summary.guid not in succeeded and summary.guid not in failed:
            failed[summary.guid] = summary.id

    with Session() as session:
        stored = set(
            session.scalars(
                select(Delivery.delivery_id).where(
                    Delivery.source == "github", Delivery.delivery_id.in_(list(failed) or [""])
                )
            )
        )
    redelivered = 0
    base = f"{repo.url}/hooks/{source.hook_id}/deliveries"
    for guid, delivery_id in failed.items():
        if guid in succeeded or guid in stored:
            continue
        # PyGithub has no wrapper for this endpoint; its public requester signs and retries it.
        gh.requester.requestJsonAndCheck("POST", f"{base}/{delivery_id}/attempts")
        redelivered += 1
        log.info("reconcile.redelivered", repo=key, delivery=guid)

    with Session() as session, session.begin():
        state = session.scalar(
            select(SyncState).where(SyncState.source == "github-hook", SyncState.key == key)
        )
        if state is None:
            state = SyncState(source="github-hook", key=key)
            session.add(state)
        state.last_synced_at = started
    return {"redelivered": redelivered, "failed_seen": len(failed)}
