"""Backfill a repository's history into the ledger through PyGithub, resumably.

A newly installed team starts with its record: milestones (for their due dates), then issues
and pull requests by `updated` ascending, each with its timeline so every promise, close, merge
and reopen is dated when it happened. Rate limits are waited out (GithubRetry sleeps until the
announced reset; the progress bar says so); 5xx answers are retried with backoff.
List reference: https://docs.github.com/en/rest/issues/issues#list-repository-issues
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

from github.GithubObject import GithubObject

from connectors import backfill_state, team_config
from connectors.backfill_state import Fetched, Progress
from connectors.github.history import item_history
from connectors.github.payload import parse_time
from connectors.github_api import github_client
from ledger import store
from trackrecord.config import Config, Source
from trackrecord.logs import get_logger

log = get_logger("connectors.github.backfill")

SYNC_SOURCE = "github-backfill"
PAGE_SIZE = 100  # GitHub's maximum per_page


class UnknownSource(LookupError):
    pass


def _raw(obj) -> dict:
    # Listed objects already hold the whole REST object; the `raw_data` property of a lazy
    # object would GET it again, one extra request per item against the rate limit.
    return GithubObject.raw_data.fget(obj)


def backfill_github(
    session_factory,
    config: Config,
    repo: str,
    *,
    since: date | datetime | None = None,
    progress: bool | None = None,
    restart: bool = False,
    page_size: int = PAGE_SIZE,
    retries: int | None = None,
    env=None,
) -> dict:
    """Read `repo` (items updated since `since`, or since the last run's cursor) into the ledger.

    `retries` bounds the attempts per request (tests keep it small); `restart` ignores the
    cursor a previous run left.
    """
    source = config.source("github", repo)
    if source is None:
        raise UnknownSource(f"repository {repo!r} is not in the configuration")
    bar = Progress(f"github {source.key}", progress)
    env = os.environ if env is None else env
    try:
        gh = github_client(
            source.key, env, retries=retries, on_wait=bar.waiting, per_page=page_size
        )
        repository = gh.get_repo(source.key)
        # Timeline entries name milestones by title (unique per repository), not by number.
        milestones = {m["title"]: m for m in map(_raw, repository.get_milestones(state="all"))}
    except BaseException:
        bar.close()
        raise
    counters = {"unknown_milestones": 0}
    cfg = team_config.github_config(config, source.team)  # the team's size labels
    team: set[str] = set()

    def remember(session) -> None:
        store.remember_members(session, source.team, "github", team)
        team.clear()

    state = backfill_state.load_state(session_factory, SYNC_SOURCE, source.key)
    resume = backfill_state.resume_point(state, since, restart)

    def item(issue) -> Fetched:
        raw = _raw(issue)

        def events():
            # Only the pull request object says merged_at and the head branch.
            pull = issue.as_pull_request().raw_data if raw.get("pull_request") else None
            timeline = [_raw(e) for e in issue.get_timeline()]
            history = item_history(source.key, raw, timeline, milestones, pull, cfg)
            counters["unknown_milestones"] += history.unknown_milestones
            team.update(history.team)
            return history.events

        return Fetched(str(raw["number"]), parse_time(raw["updated_at"]), events)

    def fetch(start, n: int):
        # Each request starts at the cursor (`since` is inclusive: items at that second come
        # again and are dropped as seen), not at page n of one listing: see cursor_pages.
        since_ = {"since": start.astimezone(UTC)} if start else {}
        listing = repository.get_issues(state="all", sort="updated", direction="asc", **since_)
        page = listing.get_page(n)
        # GitHub fills every page but the last (up to its maximum of 100); get_page does not
        # pass on the Link header.
        return [item(issue) for issue in page], len(page) >= min(page_size, PAGE_SIZE)

    summary = backfill_state.run(
        session_factory,
        config,
        source,
        backfill_state.cursor_pages(fetch, resume),
        sync_source=SYNC_SOURCE,
        since=since,
        progress=bar,
        restart=restart,
        on_page=remember,
    )
    return summary | {"milestones": len(milestones), **counters}


def sync_changed(source: Source, *, session_factory, config: Config) -> dict:
    """Re-read what changed since the last good sync (reconciliation's backfill path)."""
    return backfill_state.sync_changed(
        backfill_github, SYNC_SOURCE, source, session_factory=session_factory, config=config
    )
