"""Backfill a Jira project's history into the ledger through the `jira` library, resumably.

JQL `project = KEY [AND updated >= MINUTE] ORDER BY updated ASC, key ASC` with the changelog
expanded, one page per transaction, each request starting at the cursor (see
`backfill_state.cursor_pages`). Cloud searches on the current endpoint (`enhanced_search_issues`,
/search/jql); Server and Data Center keep the classic /search.
https://developer.atlassian.com/changelog/#CHANGE-2046

Retries are ours, not the library's: its ResilientSession retries only 429 and 503, sleeps
twice the Retry-After, and cannot tell a progress bar. Jira Cloud answers a rate limit with 429
and Retry-After (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/), which is
waited exactly; 5xx and dropped connections back off exponentially.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRAError
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from connectors import backfill_state, team_config
from connectors.backfill_state import Fetched, Progress
from connectors.github_api import no_answer
from connectors.jira.fields import parse_time
from connectors.jira.history import issue_history
from connectors.jira_api import jira_client
from trackrecord.config import Config, Source

SYNC_SOURCE = "jira-backfill"
PAGE_SIZE = 50
RETRIES = 6
TRANSIENT = frozenset({429, 500, 502, 503, 504})


class UnknownSource(LookupError):
    pass


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, JIRAError):
        return exc.status_code in TRANSIENT
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _retry_after(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def _retrying(retries: int, backoff: float, bar: Progress) -> Retrying:
    def wait(state) -> float:
        announced = _retry_after(state.outcome.exception())
        return (
            announced
            if announced is not None
            else min(backoff * 2 ** (state.attempt_number - 1), 60)
        )

    def before_sleep(state) -> None:
        exc = state.outcome.exception()
        status = getattr(exc, "status_code", None)
        bar.waiting(state.next_action.sleep, status, None if status else no_answer(exc))

    return Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait,
        retry=retry_if_exception(_transient),
        before_sleep=before_sleep,
        reraise=True,
    )


def jql_for(project: str, start: datetime | None, tz: tzinfo | None = None) -> str:
    """JQL for the issues updated at or after `start`, oldest first.

    JQL reads "yyyy-MM-dd HH:mm" to the minute, in the searching user's timezone (`tz`, from
    /myself): the minute holding `start`, whose earlier items come again and are dropped as
    read. An ambiguous wall time (the hour a clock turns back) starts an hour earlier. Without
    the timezone, a day earlier covers every offset.
    """
    where = f'project = "{project}"'
    if start is not None and tz is None:
        where += f' AND updated >= "{(start - timedelta(days=1)).date().isoformat()}"'
    elif start is not None:
        local = start.astimezone(tz)
        if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
            local -= timedelta(hours=1)
        where += f' AND updated >= "{local:%Y-%m-%d %H:%M}"'
    # The key orders issues updated in the same instant, so pages of one query stay put.
    return f"{where} ORDER BY updated ASC, key ASC"


def user_timezone(client, call) -> tzinfo | None:
    """The timezone JQL dates are read in: the API user's profile timezone."""
    try:
        name = (call(client.myself) or {}).get("timeZone")
        return ZoneInfo(name) if name else None
    except JIRAError:  # a user without a profile: the day-wide fallback
        return None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def backfill_jira(
    session_factory,
    config: Config,
    project: str,
    *,
    since: date | datetime | None = None,
    progress: bool | None = None,
    restart: bool = False,
    page_size: int = PAGE_SIZE,
    retries: int = RETRIES,
    backoff: float = 1.0,
    env=None,
) -> dict:
    """Read `project` (issues updated since `since`, or the last run's cursor) into the ledger."""
    source = config.source("jira", project)
    if source is None:
        raise UnknownSource(f"Jira project {project!r} is not in the configuration")
    bar = Progress(f"jira {source.key}", progress)
    call = _retrying(retries, backoff, bar)
    env = os.environ if env is None else env
    try:
        client = call(jira_client, env, max_retries=0)
        cloud = client.deploymentType == "Cloud"
        # Fix versions an issue has left are named by id only in its changelog.
        versions = {str(v.id): v.raw for v in call(client.project_versions, source.key)}
        tz = user_timezone(client, call)
    except BaseException:
        bar.close()
        raise
    cfg = team_config.jira_config(config, source.team)  # the team's story points field
    resume = backfill_state.resume_point(
        backfill_state.load_state(session_factory, SYNC_SOURCE, source.key), since, restart
    )
    search = {"fields": "*all", "expand": "changelog", "json_result": True}
    tokens: dict[tuple[str, int], str] = {}  # Cloud: (jql, page number) -> its nextPageToken

    def fetch(start, n: int):
        # Each request starts at the cursor, not at page n of one listing: startAt and page
        # tokens count places in a list that shifts as issues change (see cursor_pages). Page
        # numbers are used only within a block of issues the JQL cannot split.
        jql = jql_for(source.key, start, tz)
        if cloud:
            if n and (jql, n) not in tokens:
                return [], False
            token = tokens.get((jql, n))
            page = call(
                client.enhanced_search_issues,
                jql,
                nextPageToken=token,
                maxResults=page_size,
                **search,
            )
            more = bool(page.get("nextPageToken")) and not page.get("isLast")
            if more:
                tokens[(jql, n + 1)] = page["nextPageToken"]
        else:
            start_at = n * page_size
            page = call(client.search_issues, jql, startAt=start_at, maxResults=page_size, **search)
        issues = page.get("issues") or []
        if not cloud:
            more = bool(issues) and start_at + len(issues) < page.get("total", 0)
        return [
            Fetched(
                raw["key"],
                parse_time(raw["fields"]["updated"]),
                lambda raw=raw: issue_history(
                    complete_changelog(client, raw, call, cloud), versions, cfg
                ),
            )
            for raw in issues
        ], more

    return backfill_state.run(
        session_factory,
        config,
        source,
        backfill_state.cursor_pages(
            fetch, resume, lambda a, b: jql_for(source.key, a, tz) == jql_for(source.key, b, tz)
        ),
        sync_source=SYNC_SOURCE,
        since=since,
        progress=bar,
        restart=restart,
    )


def complete_changelog(client, raw: dict, call, cloud: bool) -> dict:
    """The issue with its whole changelog. A search response carries only part of a long one
    (`total` says how long it is); a partial history rebuilds a wrong past, so the rest is read
    from the issue's changelog endpoint (Cloud) or the issue itself (Server/DC, which expands
    the whole changelog there)."""
    changelog = raw.get("changelog") or {}
    histories = changelog.get("histories") or []
    if changelog.get("total", len(histories)) <= len(histories):
        return raw
    key = raw["key"]
    if cloud:
        # The jira library has no public call for /issue/{key}/changelog; _get_json is the
        # helper its own methods use, so it signs, retries and raises like they do.
        histories, start = [], 0
        while True:
            page = call(client._get_json, f"issue/{key}/changelog", params={"startAt": start})
            values = page.get("values") or []
            histories += values
            start += len(values)
            if page.get("isLast", True) or not values or start >= page.get("total", 0):
                break
    else:
        full = call(client._get_json, f"issue/{key}", params={"expand": "changelog"})
        histories = (full.get("changelog") or {}).get("histories") or []
    complete = {"startAt": 0, "maxResults": len(histories), "total": len(histories)}
    return {**raw, "changelog": {**complete, "histories": histories}}


def sync_changed(source: Source, *, session_factory, config: Config) -> dict:
    """Re-read what changed since the last good sync (reconciliation's backfill path)."""
    return backfill_state.sync_changed(
        backfill_jira, SYNC_SOURCE, source, session_factory=session_factory, config=config
    )
