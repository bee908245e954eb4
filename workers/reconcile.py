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

from connectors import backfill_state
from connectors.github import backfill as github_backfill
from connectors.github.normalize import SUPPORTED_EVENTS
from connectors.github_api import GithubNotConfigured, github_client
from connectors.jira import backfill as jira_backfill
from connectors.jira_api import JiraNotConfigured
from trackrecord.logs import get_logger
from trackrecord.models import Delivery
from workers import context

log = get_logger("workers.reconcile")

# GitHub keeps hook deliveries for a few days; looking back further finds nothing anyway.
DEFAULT_LOOKBACK = timedelta(days=3)
HOOK_SYNC_SOURCE = "github-hook"  # sync_state: where the last look at a hook's deliveries began


def reconcile_all() -> dict[str, dict]:
    """Every source: GitHub redeliveries where a hook id is known, then a re-read of what changed
    since the last good backfill. Results are keyed by repository or Jira project."""
    results = {}
    for source in context.settings().config.sources():
        try:
            results[source.key] = reconcile_source(source.kind, source.key)
        except (GithubNotConfigured, JiraNotConfigured) as exc:
            log.warning("reconcile.not_configured", source=source.key, reason=str(exc))
            results[source.key] = {"error": str(exc)}
        except Exception as exc:
            # One broken source (a wrong hook_id, an API outage) must not starve the others of
            # their hourly healing; it is logged and tried again next hour.
            log.exception("reconcile.failed", source=source.key, error=type(exc).__name__)
            results[source.key] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return results


def resync(kind: str, key: str) -> dict | str:
    """Re-read through the API the items changed since the last good sync (the backfill path),
    which heals whatever no redelivery can: deliveries older than GitHub keeps, or lost by Jira.
    A source never backfilled is left alone: a first full read is an operator's decision."""
    module = github_backfill if kind == "github" else jira_backfill
    sessions, config = context.sessions(), context.settings().config
    state = backfill_state.load_state(sessions, module.SYNC_SOURCE, key)
    if state is None or state.last_synced_at is None:
        return f"not backfilled yet: run `trackrecord backfill {kind} {key}`"
    summary = module.sync_changed(config.source(kind, key), session_factory=sessions, config=config)
    log.info("reconcile.resynced", source=key, items=summary.get("items"))
    return summary


def reconcile_source(kind: str, key: str) -> dict:
    settings = context.settings()
    source = settings.config.source(kind, key)
    if source is None:
        raise ValueError(f"{kind} source {key!r} is not in the configuration")
    if kind != "github":
        # Jira retries failed deliveries by itself; re-reading is all that is left to do.
        return {"resync": resync(kind, key)}
    result = _redeliver(settings, source) if source.hook_id is not None else {}
    result["resync"] = resync(kind, key)
    return result


def _redeliver(settings, source) -> dict:
    key = source.key
    Session = context.sessions()
    state = backfill_state.load_state(Session, HOOK_SYNC_SOURCE, key)
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
        code = summary.status_code or 0
        if 200 <= code < 300:
            succeeded.add(summary.guid)
        elif (code == 0 or code >= 500) and summary.guid not in succeeded | failed.keys():
            # Only faults heal by trying again: no answer (0) or a 5xx such as our 503 while the
            # database was down. A 4xx is a verdict (bad signature, unsupported event, too
            # large); redelivering it would fail again every hour, for ever.
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
        backfill_state.save_state(session, HOOK_SYNC_SOURCE, key, last_synced_at=started)
    return {"redelivered": redelivered, "failed_seen": len(failed)}
