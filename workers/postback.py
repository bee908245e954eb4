"""post_delivery_comment: one short comment on an item when its promise settles, exactly once.

Rows come from the webhook path only (`apply_and_record` in process_delivery, `record_missed`
in settle_overdue_job), in the transaction of the ledger change, and are enqueued after the
commit; relay puts back rows Redis never got or whose job died. The job claims its row
(`pending` -> `claimed`) before posting, so a duplicate job or a second worker finds nothing to
claim. When an earlier attempt's post may have gone through (a timeout, a crash before the
commit), it first looks for its marker on the item, among comments by our own identity.
README, "Comments on delivered items".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from rq import Callback, Retry
from sqlalchemy import and_, or_, select, update

from connectors import comments
from connectors.github_api import GithubNotConfigured
from connectors.jira_api import JiraNotConfigured
from ledger import claims
from ledger.events import linked_deliveries
from ledger.postbacks import (
    Postback,
    PostbackStatus,
    insert_pending,
    outcomes_and_scope_of,
    outcomes_and_scopes,
    overdue_pending,
    record_settlements,
    settlement_kind,
)
from ledger.store import apply_events
from ledger.store_batch import apply_group
from trackrecord.logs import get_logger
from trackrecord.queue import get_queue, live_jobs, redis_from_url
from workers import context
from workers.comment_text import marker_token, render

log = get_logger("workers.postback")

# A claim older than this whose job is gone is taken again (the worker died mid-post).
LEASE = timedelta(minutes=5)
# Retried by RQ for 5xx and network errors; each retry looks for the marker first.
JOB_RETRY = Retry(max=4, interval=[10, 60, 300, 900])
# GitHub allows 80 content-creating requests a minute and 500 an hour; we stay under both
# across all workers. https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#avoid-concurrent-requests
PACE = {"github": ((60, 60), (3600, 450)), "jira": ((60, 120),)}


# --- recording (webhook path) ------------------------------------------------------------------


def wanted(team: str, item_key: str) -> bool:
    """Postback for this team and platform: the team's `postback`, else on when the
    platform's API credentials are set."""
    model = context.settings().config.team(team)
    if model is None:
        return False
    if model.postback is not None:
        return model.postback
    return comments.can_post(item_key.partition(":")[0])


def apply_and_record(session, directory, owner, events, *, reach=None) -> set[str]:
    """`ledger.store.apply_events`, then a postback row for each commitment it settled. The ids
    of the rows to enqueue after the commit are left in `session.info["postbacks"]`, the
    (team, scope) pairs of the items before and after in `session.info["scopes_reached"]`."""
    keys = {e.item_key for e in events}
    keys |= {d.item_key for e in events for d in linked_deliveries(e)}
    # The scopes these items are in now (a summary an item leaves must hear of it too), and
    # after, those of the items touched: `milestone_summary.record` bumps them all.
    before, scopes = outcomes_and_scopes(session, keys)
    touched = apply_events(session, directory, owner, events, reach=reach)
    ids = record_settlements(session, before, touched, wanted=wanted, scopes=scopes)
    session.info.setdefault("scopes_reached", set()).update(scopes)
    session.info.setdefault("postbacks", []).extend(ids)
    return touched


def apply_group_and_record(session, directory, parts) -> list[set[tuple[str, str]]]:
    """`apply_and_record` for deliveries applied together (`ledger.store_batch.apply_group`,
    each touching items no other one touches): the outcomes and scopes read once before and
    once after for them all. Returns the (team, scope) pairs each delivery reached, as
    `apply_and_record` leaves them for `milestone_summary.record`."""
    keys = [{e.item_key for e in part.events} for part in parts]
    before, was_in = outcomes_and_scope_of(session, set().union(*keys))
    touched = apply_group(session, directory, parts)
    now_in: dict[str, tuple[str, str]] = {}
    ids = record_settlements(session, before, set().union(*touched), wanted=wanted, where=now_in)
    session.info.setdefault("postbacks", []).extend(ids)
    return [
        {was_in[k] for k in mine if k in was_in} | {now_in[k] for k in hit if k in now_in}
        for mine, hit in zip(keys, touched, strict=True)
    ]


def record_missed(session, overdue: Sequence[tuple]) -> list[int]:
    """Rows for the pending commitments `settle_overdue` has just made missed."""
    found = [
        (item_id, key, team, settlement_kind("missed", deadline))
        for item_id, key, team, deadline in overdue
        if wanted(team, key)
    ]
    return insert_pending(session, found)


def overdue_before(session, now: datetime):
    return overdue_pending(session, now)


# --- enqueueing --------------------------------------------------------------------------------


def job_id(postback_id: int) -> str:
    return f"postback-{postback_id}"


def enqueue(ids: Sequence[int], *, at: datetime | None = None) -> None:
    """Hand rows to RQ. A failure (Redis down) is logged: relay enqueues them later."""
    if not ids:
        return
    settings = context.settings()
    try:
        queue = get_queue(redis_from_url(settings.redis_url), settings.queue_name)
        for pid in ids:
            options = dict(
                retry=JOB_RETRY,
                job_timeout=120,
                on_failure=Callback(on_postback_failure),
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
                description=f"post_delivery_comment({pid})",
            )
            if at is None:
                queue.enqueue(post_delivery_comment, pid, job_id=job_id(pid), **options)
            else:
                jid = f"{job_id(pid)}-at-{int(at.timestamp())}"
                queue.enqueue_at(at, post_delivery_comment, pid, job_id=jid, **options)
    except Exception as exc:
        log.warning("postback.enqueue_failed", ids=list(ids), error=type(exc).__name__)


def relay_postbacks(min_age_seconds: float = 30) -> int:
    """Enqueue rows Redis does not hold: pending ones (enqueue failed, or their job was lost)
    and claimed ones whose claim is older than the lease (the worker died mid-post)."""
    settings = context.settings()
    redis = redis_from_url(settings.redis_url)
    now = datetime.now(UTC)
    with context.sessions()() as session:
        ids = session.scalars(
            select(Postback.id).where(
                or_(
                    and_(
                        claims.due(Postback, now),
                        Postback.created_at <= now - timedelta(seconds=min_age_seconds),
                    ),
                    claims.stale(Postback, now, LEASE),
                )
            )
        ).all()
    live = live_jobs(redis, [job_id(i) for i in ids])
    ids = [i for i in ids if job_id(i) not in live]
    enqueue(ids)
    if ids:
        log.info("postback.relayed", count=len(ids))
    return len(ids)


# --- the job -----------------------------------------------------------------------------------


def post_delivery_comment(postback_id: int) -> str:
    """Claim, render, (look for an earlier post,) post, record. Returns what happened."""
    Session = context.sessions()
    now = datetime.now(UTC)
    with Session() as session, session.begin():
        claimed = claims.claim(session, Postback, postback_id, now, LEASE)
        if not claimed:
            log.info("postback.skip", postback=postback_id, outcome="not_claimable")
            return "not_claimable"
        row = session.get(Postback, postback_id)
        key, team_name, attempts = row.item_key, row.team, row.attempts
        team = context.settings().config.team(team_name)
        if team is None or team.postback is False:
            _finish(session, postback_id, PostbackStatus.SKIPPED, error="postback off")
            return "off"
        body = render(session, row, team, now)
        row.body = body
    platform = key.partition(":")[0]
    if team.dry_run:
        log.info("postback.dry_run", postback=postback_id, item=key, body=body)
        _store(postback_id, PostbackStatus.SKIPPED, error="dry_run")
        return "dry_run"
    paced_until = _pace(platform, now)
    if paced_until is not None:
        _hand_back(postback_id, error="paced", not_before=paced_until, refund=True)
        enqueue([postback_id], at=paced_until)
        log.info("postback.paced", postback=postback_id, until=paced_until.isoformat())
        return "paced"
    try:
        client, target = comments.comments_for(key)
        if attempts > 1:
            # An earlier attempt may have posted before it failed: never post twice.
            found = client.find(target, marker_token(postback_id))
            if found:
                _store(postback_id, PostbackStatus.POSTED, comment_id=found)
                log.info("postback.found", postback=postback_id, item=key, comment=found)
                return "found"
        posted = client.post(target, body)
    except comments.RateLimited as exc:
        _hand_back(postback_id, error=f"rate limited: {exc}", not_before=exc.reset, refund=True)
        enqueue([postback_id], at=exc.reset)
        log.warning("postback.rate_limited", postback=postback_id, until=exc.reset.isoformat())
        return "rate_limited"
    except comments.Gone as exc:
        _store(postback_id, PostbackStatus.FAILED, error=str(exc))
        log.warning("postback.gone", postback=postback_id, item=key, error=str(exc)[:200])
        return "gone"
    except (comments.Transient, JiraNotConfigured, GithubNotConfigured) as exc:
        _hand_back(postback_id, error=f"{type(exc).__name__}: {exc}")
        log.warning("postback.retry", postback=postback_id, item=key, error=str(exc)[:200])
        raise
    _store(postback_id, PostbackStatus.POSTED, comment_id=posted.comment_id)
    log.info("postback.posted", postback=postback_id, item=key, comment=posted.comment_id)
    return "posted"


def on_postback_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ calls this on every failed attempt; the last one marks the row failed."""
    if job.retries_left or not job.args:
        return
    _store(job.args[0], PostbackStatus.FAILED, error=f"{exc_type.__name__}: {exc_value}",
           only_from=(PostbackStatus.PENDING, PostbackStatus.CLAIMED))  # fmt: skip


def retry(postback_id: int) -> bool:
    """From the CLI: put a failed row back to pending and enqueue it (its marker is looked for
    first, since its attempts are over one)."""
    with context.sessions()() as session, session.begin():
        done = session.execute(
            update(Postback)
            .where(Postback.id == postback_id, Postback.status == PostbackStatus.FAILED)
            .values(status=PostbackStatus.PENDING, not_before=None)
        ).rowcount
    if done:
        enqueue([postback_id])
    return bool(done)


def _finish(session, pid: int, status: str, **values) -> None:
    session.execute(update(Postback).where(Postback.id == pid).values(status=status, **values))


def _store(pid, status, *, comment_id=None, error=None, only_from=(PostbackStatus.CLAIMED,)):
    values = {"status": status, "error": error[:2000] if error else None}
    if comment_id is not None:
        values.update(comment_id=comment_id, posted_at=datetime.now(UTC))
    with context.sessions()() as session, session.begin():
        session.execute(
            update(Postback)
            .where(Postback.id == pid, Postback.status.in_(only_from))
            .values(**values)
        )


def _hand_back(pid: int, *, error: str, not_before: datetime | None = None, refund=False):
    """Back to pending. A rate limit or pacing is not an attempt: nothing was sent."""
    values = {"status": PostbackStatus.PENDING, "error": error[:2000], "not_before": not_before}
    if refund:
        values["attempts"] = Postback.attempts - 1
    with context.sessions()() as session, session.begin():
        session.execute(
            update(Postback)
            .where(Postback.id == pid, Postback.status == PostbackStatus.CLAIMED)
            .values(**values)
        )


def _pace(platform: str, now: datetime) -> datetime | None:
    """Count this post in every window of the platform; the end of a full window, if any."""
    settings = context.settings()
    redis = redis_from_url(settings.redis_url)
    stamp = int(now.timestamp())
    for seconds, limit in PACE.get(platform, ()):
        window = stamp // seconds
        key = f"trackrecord:postback:pace:{platform}:{seconds}:{window}"
        count = redis.incr(key)
        redis.expire(key, seconds * 2)
        if count > limit:
            return datetime.fromtimestamp((window + 1) * seconds, UTC)
    return None
