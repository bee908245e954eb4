"""Reading a Jira issue's fields: times, the promise it carries (due date, fix version with a
release date, active sprint) and where it came from, sprints in Cloud's and Server's shapes,
the site a version or sprint belongs to, and story points.

Shared by the action handlers and the evidence of `connectors.jira.normalize`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from connectors.shapes import InvalidPayload, numeric_id, parse_instant, site_host

Payload = dict[str, Any]


@dataclass(frozen=True)
class JiraConfig:
    story_points_field: str = "customfield_10016"
    # None: find the sprint field by its shape, because its id differs per Jira site.
    sprint_field: str | None = None
    drop_resolutions: frozenset[str] = frozenset(
        {"won't do", "won't fix", "duplicate", "cannot reproduce", "declined"}
    )
    # Changelogs name statuses, not categories: a move out of one of these is a reopen.
    done_statuses: frozenset[str] = frozenset({"done", "resolved", "closed"})


DEFAULT = JiraConfig()
PROMISE_FIELDS = {"duedate", "fixversions", "fix version", "sprint"}
SERVER_SPRINT = "com.atlassian.greenhopper.service.sprint.Sprint"


def parse_time(value: str | None) -> datetime | None:
    """Jira writes offsets without a colon ("2019-05-07T10:11:12.345+0000").

    Fractions are dropped: ties within one second are settled by the life rank instead, the
    same way as for GitHub, whose timestamps have whole seconds.
    """
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC).replace(microsecond=0)


def event_time(payload: Payload) -> datetime:
    """`timestamp` (ms) is when Jira fired the webhook, right after the change it reports."""
    if payload.get("timestamp"):
        return datetime.fromtimestamp(payload["timestamp"] // 1000, tz=UTC)
    issue = payload.get("issue") or {}
    updated = parse_time((issue.get("fields") or {}).get("updated"))
    if updated is None:
        raise InvalidPayload("timestamp: required when there is no issue.fields.updated")
    return updated


def scope_key(kind: str, site: str, ident: str) -> str:
    """`jira:<site host>/version/<id>` or `jira:<site host>/sprint/<id>`: version and sprint ids
    are numbered per Jira site, and their events name no project, so the site is part of the key
    (docs/ledger.md, "Scope keys")."""
    return f"jira:{site}/{kind}/{ident}"


def sprints(fields: Payload, cfg: JiraConfig) -> list[Payload]:
    """The sprint entries of the sprint field, found by shape when its id is not configured.

    The field is a custom field whose shape is the site's: entries that are not recognisably a
    sprint with an id are skipped, never a reason to fail.
    """
    if cfg.sprint_field:
        candidates = [fields.get(cfg.sprint_field)]
    else:
        candidates = [v for k, v in fields.items() if k.startswith("customfield_")]
    found: list[Payload] = []
    for value in candidates:
        for entry in value if isinstance(value, list) else []:
            # Cloud's sprint objects; a future sprint may have no dates yet, but has a board.
            if (
                isinstance(entry, dict)
                and "state" in entry
                and ("endDate" in entry or "boardId" in entry)
            ):
                sprint = entry
            elif isinstance(entry, str) and entry.startswith(SERVER_SPRINT):
                # Server/Data Center sends "...Sprint@1a2b[id=3,state=ACTIVE,endDate=...]".
                sprint = server_sprint(entry)
            else:
                continue
            if numeric_id(sprint.get("id")) is not None:
                found.append(sprint)
    return found


def server_sprint(entry: str) -> Payload:
    """The key=value pairs of a Server sprint string, split on commas: linear in its length,
    whatever it holds (a backtracking pattern over it was not)."""
    body = entry.split("[", 1)[-1]
    out: Payload = {}
    for part in body.removesuffix("]").split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if sep and name and name.replace("_", "a").isalnum() and name.isascii():
            out[name] = value.split("]", 1)[0]
    return out


def sprint_end(sprint: Payload) -> datetime | None:
    # Server writes "<null>" for a date not set; anything that is not a time says nothing.
    value = sprint.get("endDate")
    return parse_time(value) if parse_instant(value) is not None else None


def sprint_state(sprint: Payload) -> str:
    state = sprint.get("state")
    return state.lower() if isinstance(state, str) else ""


def site_of(obj: Payload, site: str | None, what: str) -> str:
    # The object's own link says its site; entries that have none (Cloud's sprint objects,
    # Server's sprint strings) are on the issue's.
    found = site_host(obj.get("self")) or site
    if found is None:
        raise InvalidPayload(f"issue.self: required to know the Jira site of {what}")
    return found


def promise(
    fields: Payload, cfg: JiraConfig, site: str | None = None
) -> tuple[date | None, datetime | None, str | None]:
    """The promised date, the instant it ends when it is a sprint's, and where it came from:
    due date, else fix version, else sprint. `site` is the host of the issue's `self` link.

    A sprint ends at an instant whose calendar day depends on the team's timezone: the date
    given is its UTC day, and the fold takes the instant's day in the team's timezone.
    """
    if fields.get("duedate"):
        return date.fromisoformat(fields["duedate"]), None, None
    versions = [v for v in fields.get("fixVersions") or [] if v.get("releaseDate")]
    if versions:
        earliest = min(versions, key=lambda v: v["releaseDate"])
        where = site_of(earliest, site, f"fix version {earliest['id']}")
        return (
            date.fromisoformat(earliest["releaseDate"]),
            None,
            scope_key("version", where, earliest["id"]),
        )
    found = sprints(fields, cfg)
    for sprint in found:
        end = sprint_end(sprint)
        if sprint_state(sprint) == "active" and end:
            ident = numeric_id(sprint["id"])
            where = site_of(sprint, site, f"sprint {ident}")
            return end.date(), end, scope_key("sprint", where, ident)
    # No date yet, but a container that will get one: a future sprint (its end counts once it
    # starts) or an undated fix version (once it has a release date). The item is recorded in
    # it, so the sprint_started / version_updated delivery turns it into a promise.
    for sprint in found:
        if sprint_state(sprint) == "future":
            ident = numeric_id(sprint["id"])
            return None, None, scope_key("sprint", site_of(sprint, site, f"sprint {ident}"), ident)
    undated = [v for v in fields.get("fixVersions") or [] if v.get("id")]
    if undated:
        where = site_of(undated[0], site, f"fix version {undated[0]['id']}")
        return None, None, scope_key("version", where, undated[0]["id"])
    return None, None, None


def site_of_issue(payload: Payload) -> str | None:
    return site_host((payload.get("issue") or {}).get("self"))


def story_points(value: Any) -> float | None:
    # A custom field: a number on sites that have story points, anything or nothing elsewhere.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        points = float(value)
    except OverflowError:
        return None
    return points if math.isfinite(points) else None
