"""update_milestone_summary: one living summary per milestone, fix version or sprint, kept in
place (issue 9; README, "Comments on delivered items").

A webhook delivery that touches items of a scope bumps the scope's `summaries.version` in its
own transaction and, after the commit, enqueues one job for the (team, scope). A burst
coalesces: while a job for the pair is queued and not yet started, no other is enqueued (a
Redis flag the job clears as it starts, so a delivery arriving while it runs gets its own).
The job locks the row, renders from the ledger, and writes to the platform only when the
version it rendered is newer than the one the platform shows: a summary rendered from an older
state never overwrites a newer one.

Where: a GitHub milestone's description, between the summary markers (the rest untouched), or,
with the team's `summary_issue`, one comment on that issue (GitHub or Jira), created once,
found again by its marker, then edited.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rq import Callback, Retry
from sqlalchemy import select

from connectors import comments, scope_titles, summary_targets
from connectors.github.payload import milestone_key
from connectors.github_api import GithubNotConfigured
from connectors.jira_api import JiraNotConfigured
from connectors.team_config import jira_config
from ledger import milestones
from ledger import scope_titles as ledger_titles
from ledger.summaries import Summary, bump, scopes_of
from trackrecord.logs import get_logger
from trackrecord.queue import get_queue, redis_from_url
from workers import context, summary_text

log = get_logger("workers.milestone_summary")

JOB_RETRY = Retry(max=4, interval=[10, 60, 300, 900])
FLAG_TTL = 600  # seconds: a flag whose job was lost frees the pair after this


# --- recording (webhook path) ------------------------------------------------------------------


def summary_issue(team, platform: str) -> str | None:
    """The team's tracking issue on this platform, as an item key, if configured."""
    configured = team.summary_issue
    for value in [configured] if isinstance(configured, str) else configured or []:
        if "#" in value and platform == "github":
            return f"github:{value}"
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*-\d+", value) and platform == "jira":
            return f"jira:{value.upper()}"
    return None


def target_of(team, scope: str) -> str | None:
    """`milestone` (the description), a tracking issue's item key, or None (nowhere)."""
    platform = scope.partition(":")[0]
    issue = summary_issue(team, platform)
    if issue:
        return issue
    if platform == "github" and summary_targets.milestone_of(scope):
        return "milestone"
    return None  # a Jira version or sprint has no description we write: needs summary_issue


def wanted(team_name: str, scope: str) -> bool:
    team = context.settings().config.team(team_name)
    if team is None or team.postback is False or target_of(team, scope) is None:
        return False
    return team.postback is True or comments.can_post(scope.partition(":")[0])


def record(session, touched: Iterable[str], row=None, doc=None, team=None) -> None:
    """In the delivery's transaction: bump the scopes of the touched items (and the scopes they
    were in before it, so a summary an item left is updated too), mark a GitHub milestone
    closed by a `milestone.closed` delivery, and keep the titles of the scopes it reached. The
    pairs to enqueue after the commit are left in `session.info["summaries"]`."""
    reached = session.info.pop("scopes_reached", None)  # read by apply_and_record
    if reached is None:
        reached = scopes_of(session, touched)
    found = {pair for pair in reached if wanted(*pair)}
    closed = None
    if row is not None and row.event == "milestone" and (doc or {}).get("action") == "closed":
        closed = (team, milestone_key(doc, doc["milestone"]))
        reached.add(closed)
    if row is not None and doc is not None:
        _remember_titles(session, row.source, row.event, doc, team, {s for _, s in reached})
    bump(session, found)
    if closed and team and wanted(*closed):
        bump(session, [closed], closed=True)
        found.add(closed)
    session.info.setdefault("summaries", []).extend(sorted(found))


def record_group(session, entries) -> None:
    """`record` for deliveries applied together: `entries` holds (scopes reached, row, doc,
    team) for each, in arrival order. The titles are read and the scopes bumped once for them
    all (a later delivery's title wins, as it would one by one)."""
    found, closed_found, titles = set(), set(), {}
    for reached, row, doc, team in entries:
        found |= {pair for pair in reached if wanted(*pair)}
        if row.event == "milestone" and (doc or {}).get("action") == "closed":
            closed = (team, milestone_key(doc, doc["milestone"]))
            reached = reached | {closed}
            if team and wanted(*closed):
                closed_found.add(closed)
        titles.update(_titles(row.source, row.event, doc, team, {s for _, s in reached}))
    ledger_titles.remember(session, titles)
    bump(session, found)
    bump(session, closed_found, closed=True)
    session.info.setdefault("summaries", []).extend(sorted(found | closed_found))


def _remember_titles(session, source: str, event: str, doc: dict, team, reached: set) -> None:
    ledger_titles.remember(session, _titles(source, event, doc, team, reached))


def _titles(source: str, event: str, doc: dict, team, reached: set) -> dict[str, str]:
    # Only scopes this delivery reached (items of its own verified source): a payload may name
    # any milestone or sprint, and must not rename another client's.
    if source == "github":
        titles = scope_titles.github_titles(event, doc)
    else:
        titles = scope_titles.jira_titles(doc, jira_config(context.settings().config, team))
    return {s: t for s, t in titles.items() if s in reached}


# --- enqueueing --------------------------------------------------------------------------------


def _digest(team: str, scope: str) -> str:
    return hashlib.sha1(f"{team}\n{scope}".encode()).hexdigest()[:16]


def flag(team: str, scope: str) -> str:
    return f"trackrecord:summary:queued:{_digest(team, scope)}"


def enqueue(pairs: Iterable[tuple[str, str]], *, at: datetime | None = None) -> None:
    """One job per (team, scope), unless one is queued already. A failure (Redis down) is
    logged: the next delivery of the scope enqueues it again."""
    pairs = sorted(set(pairs))
    if not pairs:
        return
    settings = context.settings()
    try:
        redis = redis_from_url(settings.redis_url)
        queue = get_queue(redis, settings.queue_name)
        for team, scope in pairs:
            if at is None and not redis.set(flag(team, scope), 1, nx=True, ex=FLAG_TTL):
                continue  # a queued job will read the newest version
            jid = f"summary-{_digest(team, scope)}-{int((at or datetime.now(UTC)).timestamp())}"
            options = dict(retry=JOB_RETRY, job_timeout=120, result_ttl=3600,
                           on_failure=Callback(on_summary_failure),
                           description=f"update_milestone_summary({team}, {scope})")  # fmt: skip
            if at is None:
                queue.enqueue(update_milestone_summary, team, scope, job_id=jid, **options)
            else:
                queue.enqueue_at(at, update_milestone_summary, team, scope, job_id=jid, **options)
    except Exception as exc:
        log.warning("summary.enqueue_failed", pairs=pairs, error=type(exc).__name__)


def relay_summaries(min_age_seconds: float = 60) -> int:
    """Enqueue the summaries left behind: newer than what the platform shows, untouched for a
    while, and not failed (a job lost with Redis, or a worker killed mid-job). A failed one
    waits for the next delivery of its scope, which clears the failure."""
    settings = context.settings()
    since = datetime.now(UTC) - timedelta(seconds=min_age_seconds)
    with context.sessions()() as session:
        pairs = session.execute(
            select(Summary.team, Summary.scope).where(
                Summary.version > Summary.rendered_version,
                Summary.error.is_(None),
                Summary.updated_at <= since,
            )
        ).all()
    pairs = [(team, scope) for team, scope in pairs if settings.config.team(team) is not None]
    enqueue(pairs)  # a pair whose job is still queued keeps its flag and is skipped
    if pairs:
        log.info("summary.relayed", count=len(pairs))
    return len(pairs)


def on_summary_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ calls this on every failed attempt; the last one records the error on the row."""
    if job.retries_left or len(job.args) != 2:
        return
    _fail(*job.args, f"{exc_type.__name__}: {exc_value}")


# --- the job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    version: int
    target: str
    text: str  # the block (milestone description) or the whole comment


def render(session, row: Summary, team, now: datetime) -> Rendered | None:
    """The summary of the row's scope as the ledger stands, stamped with the row's version."""
    version = row.version  # read first: the figures below are at least this new
    tz = ZoneInfo(team.timezone)
    found = milestones.team_milestones(
        session.connection(), team=team.name, now=now, tz=tz,
        half_life_days=team.trust_half_life_days,
    )  # fmt: skip
    figures = next((m for m in found["milestones"] if m["scope"] == row.scope), None)
    target = target_of(team, row.scope)
    if figures is None or target is None:
        return None
    today = now.astimezone(tz).date()
    if target == "milestone":
        text = summary_text.block(figures, title=None, today=today, closed=row.closed)
    else:
        # The scope's name when a delivery showed it, else its key (still unambiguous).
        title = ledger_titles.titles_of(session, [row.scope]).get(row.scope, row.scope)
        text = summary_text.comment(target.partition(":")[0], row.scope, figures,
                                    title=title, today=today, closed=row.closed)  # fmt: skip
    return Rendered(version, target, text)


def write(row: Summary, rendered: Rendered) -> str:
    """Write `rendered` to the platform if it is newer than what the platform shows. Call with
    the row locked (`_locked`), in the transaction that then stores the outcome."""
    if rendered.version <= row.rendered_version:
        return "stale"
    if rendered.target == "milestone":
        repo, number = summary_targets.milestone_of(row.scope)
        summary_targets.GithubSummaries(repo).write_milestone(number, rendered.text)
        row.comment_id = None
    else:
        known = row.comment_id if row.target == rendered.target else None
        token = summary_text.marker_token(row.scope)
        posted = summary_targets.write_comment(rendered.target, known, token, rendered.text)
        row.comment_id = posted.comment_id
    row.target, row.body = rendered.target, rendered.text
    row.rendered_version, row.error, row.updated_at = rendered.version, None, datetime.now(UTC)
    return "written"


def locked(session, team: str, scope: str) -> Summary | None:
    # FOR UPDATE on PostgreSQL: two jobs of one scope write one after the other. (SQLite
    # ignores it; its single writer serialises the final UPDATE.)
    return session.scalars(
        select(Summary).where(Summary.team == team, Summary.scope == scope).with_for_update()
    ).first()


def update_milestone_summary(team_name: str, scope: str) -> str:
    """Render under the row lock and write if newer. Returns what happened."""
    settings = context.settings()
    with contextlib.suppress(Exception):  # Redis down: the flag expires by itself
        redis_from_url(settings.redis_url).delete(flag(team_name, scope))
    team = settings.config.team(team_name)
    if team is None:
        return "off"
    now = datetime.now(UTC)
    try:
        with context.sessions()() as session, session.begin():
            row = locked(session, team_name, scope)
            if row is None or row.version <= row.rendered_version:
                return "current"
            rendered = render(session, row, team, now)
            if rendered is None:
                return "nothing"
            if team.dry_run:
                log.info("summary.dry_run", team=team_name, scope=scope, body=rendered.text)
                return "dry_run"
            outcome = write(row, rendered)
    except comments.RateLimited as exc:
        enqueue([(team_name, scope)], at=exc.reset)
        log.warning("summary.rate_limited", scope=scope, until=exc.reset.isoformat())
        return "rate_limited"
    except comments.Gone as exc:
        _fail(team_name, scope, str(exc))
        log.warning("summary.gone", team=team_name, scope=scope, error=str(exc)[:200])
        return "gone"
    except (comments.Transient, JiraNotConfigured, GithubNotConfigured) as exc:
        log.warning("summary.retry", team=team_name, scope=scope, error=str(exc)[:200])
        raise
    log.info("summary.done", team=team_name, scope=scope, outcome=outcome)
    return outcome


def _fail(team: str, scope: str, error: str) -> None:
    with context.sessions()() as session, session.begin():
        row = locked(session, team, scope)
        if row is not None:
            row.error = error[:2000]
