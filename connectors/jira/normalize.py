"""Jira webhook payloads become domain events.

Routing is data: `ROUTES` maps (webhookEvent, issue_event_type_name) to a small pure handler,
with "*" as the type wildcard; `IGNORED` lists what is received on purpose and dropped.
Payload reference: https://developer.atlassian.com/server/jira/platform/webhooks/
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ledger.events import DomainEvent, EventKind

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
    # A sprint ends at an instant; its calendar day depends on where the team is.
    sprint_tz: ZoneInfo = ZoneInfo("UTC")


DEFAULT = JiraConfig()
_PROMISE_FIELDS = {"duedate", "fixversions", "fix version", "sprint"}
_SERVER_SPRINT = "com.atlassian.greenhopper.service.sprint.Sprint"


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
    return parse_time(payload["issue"]["fields"]["updated"])


def sprints(fields: Payload, cfg: JiraConfig) -> list[Payload]:
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
                found.append(entry)
            elif isinstance(entry, str) and entry.startswith(_SERVER_SPRINT):
                # Server/Data Center sends "...Sprint@1a2b[id=3,state=ACTIVE,endDate=...]".
                found.append(dict(re.findall(r"(\w+)=([^,\]]*)", entry.split("[", 1)[-1])))
    return found


def promise(fields: Payload, cfg: JiraConfig) -> tuple[date | None, str | None]:
    """The promised date and where it came from: due date, else fix version, else sprint."""
    if fields.get("duedate"):
        return date.fromisoformat(fields["duedate"]), None
    versions = [v for v in fields.get("fixVersions") or [] if v.get("releaseDate")]
    if versions:
        earliest = min(versions, key=lambda v: v["releaseDate"])
        return date.fromisoformat(earliest["releaseDate"]), f"jira:version/{earliest['id']}"
    found = sprints(fields, cfg)
    for sprint in found:
        end = parse_time(sprint.get("endDate")) if sprint.get("endDate") != "<null>" else None
        if str(sprint.get("state", "")).lower() == "active" and end:
            return end.astimezone(cfg.sprint_tz).date(), f"jira:sprint/{sprint['id']}"
    # No date yet, but a container that will get one: a future sprint (its end counts once it
    # starts) or an undated fix version (once it has a release date). The item is recorded in
    # it, so the sprint_started / version_updated delivery turns it into a promise.
    for sprint in found:
        if str(sprint.get("state", "")).lower() == "future":
            return None, f"jira:sprint/{sprint['id']}"
    undated = [v for v in fields.get("fixVersions") or [] if v.get("id")]
    if undated:
        return None, f"jira:version/{undated[0]['id']}"
    return None, None


def _actor(user: Payload | None) -> str | None:
    # Cloud identifies people by accountId; Server and Data Center by name.
    return (user or {}).get("accountId") or (user or {}).get("name")


def _event(payload: Payload, kind: EventKind, at: datetime, cfg: JiraConfig, **extra: Any):
    fields = payload["issue"].get("fields") or {}
    points = fields.get(cfg.story_points_field)
    values: dict[str, Any] = {
        "source": "jira",
        "item_key": f"jira:{payload['issue']['key']}",
        "kind": kind,
        "at": at,
        "story_points": float(points) if isinstance(points, int | float) else None,
        "actor": _actor(payload.get("user")),
        "title": fields.get("summary"),
        "item_type": "jira",
    }
    values.update(extra)
    return DomainEvent(**values)


def _is_done(fields: Payload) -> bool:
    return ((fields.get("status") or {}).get("statusCategory") or {}).get("key") == "done"


def _close(payload: Payload, cfg: JiraConfig) -> DomainEvent:
    fields = payload["issue"]["fields"]
    name = (fields.get("resolution") or {}).get("name")
    # Some workflows reach done without a resolution; the status category still says done.
    kind = (
        EventKind.DROPPED if (name or "").lower() in cfg.drop_resolutions else EventKind.DELIVERED
    )
    at = parse_time(fields.get("resolutiondate")) or event_time(payload)
    return _event(payload, kind, at, cfg, resolution=name)


def _promise_event(payload: Payload, at: datetime, cfg: JiraConfig) -> DomainEvent:
    promised, scope = promise(payload["issue"]["fields"], cfg)
    kind = EventKind.PROMISE_SET if promised or scope else EventKind.DESCOPED
    return _event(payload, kind, at, cfg, promised_date=promised, scope=scope)


def created(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    fields = payload["issue"]["fields"]
    at = parse_time(fields.get("created")) or event_time(payload)
    events = [_event(payload, EventKind.OPENED, at, cfg, actor=_actor(fields.get("reporter")))]
    if any(promise(fields, cfg)):
        events.append(_promise_event(payload, at, cfg))
    if _is_done(fields):
        events.append(_close(payload, cfg))
    return events


def updated(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    fields = payload["issue"]["fields"]
    at = event_time(payload)
    items = (payload.get("changelog") or {}).get("items") or []
    names = {str(i.get("fieldId") or i.get("field")).lower() for i in items}
    names |= {str(i.get("field")).lower() for i in items}
    events: list[DomainEvent] = []
    if names & _PROMISE_FIELDS or (cfg.sprint_field and cfg.sprint_field.lower() in names):
        events.append(_promise_event(payload, at, cfg))
    if names & {"status", "resolution"}:
        if _is_done(fields):
            events.append(_close(payload, cfg))
        elif any(_leaves_done(i, cfg) for i in items):
            events.append(_event(payload, EventKind.REOPENED, at, cfg))
    if payload.get("issue_event_type_name") == "issue_commented" and payload.get("comment"):
        events += comment(payload, cfg)
    # Every delivery carries the whole issue: keep title and points current even when
    # nothing the ledger counts has changed.
    return events or [_event(payload, EventKind.UPDATED, at, cfg)]


def _leaves_done(item: Payload, cfg: JiraConfig) -> bool:
    field = str(item.get("field")).lower()
    if field == "resolution":
        return item.get("from") is not None and item.get("to") is None
    return field == "status" and str(item.get("fromString")).lower() in cfg.done_statuses


def deleted(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    return [_event(payload, EventKind.DELETED, event_time(payload), cfg)]


def comment(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    body = payload["comment"]
    at = parse_time(body.get("created")) or event_time(payload)
    # comment_created sends a trimmed issue, so it says nothing reliable about the item.
    snapshot = payload.get("webhookEvent") != "comment_created"
    return [
        _event(
            payload,
            EventKind.COMMENTED,
            at,
            cfg,
            actor=_actor(body.get("author")),
            snapshot=snapshot,
        )
    ]


def _container(kind: str, obj: Payload, promised: date | None, payload: Payload) -> DomainEvent:
    key = f"jira:{kind}/{obj['id']}"
    return DomainEvent(
        source="jira",
        item_key=key,
        kind=EventKind.MILESTONE_DUE_CHANGED,
        at=event_time(payload),
        promised_date=promised,
        title=obj.get("name"),
        scope=key,
        snapshot=False,
    )


def version_updated(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    version = payload["version"]
    released = version.get("releaseDate")
    promised = date.fromisoformat(released) if released else None
    return [_container("version", version, promised, payload)]


def sprint_updated(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    sprint = payload["sprint"]
    end = parse_time(sprint.get("endDate"))
    if str(sprint.get("state")).lower() != "active" or end is None:
        return []
    return [_container("sprint", sprint, end.astimezone(cfg.sprint_tz).date(), payload)]


Handler = Callable[[Payload, JiraConfig], list[DomainEvent]]

ROUTES: dict[tuple[str, str], Handler] = {
    ("jira:issue_created", "*"): created,
    ("jira:issue_updated", "*"): updated,
    ("jira:issue_deleted", "*"): deleted,
    ("comment_created", "*"): comment,
    ("jira:version_updated", "*"): version_updated,
    ("sprint_updated", "*"): sprint_updated,
    # A started sprint gives its end date to the issues planned into it (recorded in its scope).
    ("sprint_started", "*"): sprint_updated,
}

IGNORED: frozenset[tuple[str, str]] = frozenset(
    {
        ("comment_updated", "*"),
        ("comment_deleted", "*"),
        ("jira:worklog_updated", "*"),
        ("worklog_created", "*"),
        ("worklog_updated", "*"),
        ("worklog_deleted", "*"),
        ("jira:version_created", "*"),  # no issue depends on it yet
        ("jira:version_released", "*"),  # releasing settles nothing; each issue settles itself
        ("jira:version_deleted", "*"),  # Jira sends issue updates for the fix versions it clears
        ("sprint_created", "*"),
        ("sprint_closed", "*"),  # unfinished issues move on and send Sprint changelogs
    }
)


def _route(payload: Payload) -> tuple[str, str]:
    return (payload.get("webhookEvent") or "", payload.get("issue_event_type_name") or "")


def classify(payload: Payload) -> str:
    """'routed', 'ignored' or 'unknown', so intake can record why nothing happened."""
    event, type_name = _route(payload)
    for key in ((event, type_name), (event, "*")):
        if key in ROUTES:
            return "routed"
        if key in IGNORED:
            return "ignored"
    return "unknown"


def normalize(payload: Payload, config: JiraConfig = DEFAULT) -> list[DomainEvent]:
    event, type_name = _route(payload)
    handler = ROUTES.get((event, type_name)) or ROUTES.get((event, "*"))
    return handler(payload, config) if handler else []
