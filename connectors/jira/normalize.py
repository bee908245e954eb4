"""Jira webhook payloads become domain events.

Routing is data: `ROUTING` maps (webhookEvent, issue_event_type_name) to a small pure handler,
with "*" as the type wildcard, and lists what is received on purpose and dropped; the webhook
view and the worker both read it. Every issue payload is also read for what it shows now
(`evidence`): due date, fix versions, sprint, status.
Payload reference: https://developer.atlassian.com/server/jira/platform/webhooks/
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from connectors.jira import shapes
from connectors.routing import ANY, RoutingTable
from connectors.shapes import InvalidPayload, numeric_id, parse_instant, site_host
from ledger.events import DomainEvent, EventKind, with_evidence

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
            elif isinstance(entry, str) and entry.startswith(_SERVER_SPRINT):
                # Server/Data Center sends "...Sprint@1a2b[id=3,state=ACTIVE,endDate=...]".
                sprint = _server_sprint(entry)
            else:
                continue
            if numeric_id(sprint.get("id")) is not None:
                found.append(sprint)
    return found


def _server_sprint(entry: str) -> Payload:
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


def _sprint_end(sprint: Payload) -> datetime | None:
    # Server writes "<null>" for a date not set; anything that is not a time says nothing.
    value = sprint.get("endDate")
    return parse_time(value) if parse_instant(value) is not None else None


def _sprint_state(sprint: Payload) -> str:
    state = sprint.get("state")
    return state.lower() if isinstance(state, str) else ""


def _site_of(obj: Payload, site: str | None, what: str) -> str:
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
        where = _site_of(earliest, site, f"fix version {earliest['id']}")
        return (
            date.fromisoformat(earliest["releaseDate"]),
            None,
            scope_key("version", where, earliest["id"]),
        )
    found = sprints(fields, cfg)
    for sprint in found:
        end = _sprint_end(sprint)
        if _sprint_state(sprint) == "active" and end:
            ident = numeric_id(sprint["id"])
            where = _site_of(sprint, site, f"sprint {ident}")
            return end.date(), end, scope_key("sprint", where, ident)
    # No date yet, but a container that will get one: a future sprint (its end counts once it
    # starts) or an undated fix version (once it has a release date). The item is recorded in
    # it, so the sprint_started / version_updated delivery turns it into a promise.
    for sprint in found:
        if _sprint_state(sprint) == "future":
            ident = numeric_id(sprint["id"])
            return None, None, scope_key("sprint", _site_of(sprint, site, f"sprint {ident}"), ident)
    undated = [v for v in fields.get("fixVersions") or [] if v.get("id")]
    if undated:
        where = _site_of(undated[0], site, f"fix version {undated[0]['id']}")
        return None, None, scope_key("version", where, undated[0]["id"])
    return None, None, None


def _site(payload: Payload) -> str | None:
    return site_host((payload.get("issue") or {}).get("self"))


def _points(value: Any) -> float | None:
    # A custom field: a number on sites that have story points, anything or nothing elsewhere.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        points = float(value)
    except OverflowError:
        return None
    return points if math.isfinite(points) else None


def _actor(user: Payload | None) -> str | None:
    # Cloud identifies people by accountId; Server and Data Center by name.
    return (user or {}).get("accountId") or (user or {}).get("name")


def _event(payload: Payload, kind: EventKind, at: datetime, cfg: JiraConfig, **extra: Any):
    fields = payload["issue"].get("fields") or {}
    values: dict[str, Any] = {
        "source": "jira",
        "item_key": f"jira:{payload['issue']['key']}",
        "kind": kind,
        "at": at,
        "story_points": _points(fields.get(cfg.story_points_field)),
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
    promised, due_at, scope = promise(payload["issue"]["fields"], cfg, _site(payload))
    kind = EventKind.PROMISE_SET if promised or scope else EventKind.DESCOPED
    return _event(payload, kind, at, cfg, promised_date=promised, due_at=due_at, scope=scope)


def created(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    fields = payload["issue"]["fields"]
    at = parse_time(fields.get("created")) or event_time(payload)
    events = [_event(payload, EventKind.OPENED, at, cfg, actor=_actor(fields.get("reporter")))]
    if any(promise(fields, cfg, _site(payload))):
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


def _container(
    kind: str, obj: Payload, promised: date | None, payload: Payload, due_at: datetime | None = None
) -> DomainEvent:
    # The shape requires the object's self link (connectors/jira/shapes.py): the site's host.
    key = scope_key(kind, site_host(obj["self"]), obj["id"])
    return DomainEvent(
        source="jira",
        item_key=key,
        kind=EventKind.MILESTONE_DUE_CHANGED,
        at=event_time(payload),
        promised_date=promised,
        title=obj.get("name"),
        scope=key,
        snapshot=False,
        due_at=due_at,
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
    # Site-wide: no team, so no timezone. The end instant travels and the fold takes its day.
    return [_container("sprint", sprint, end.date(), payload, due_at=end)]


_ISSUE_EVENTS = frozenset({"jira:issue_created", "jira:issue_updated", "jira:issue_deleted"})


def _fact(payload: Payload, kind: EventKind, at: datetime, **extra: Any) -> DomainEvent:
    """An evidence event: no snapshot and no user, so every payload that shows the same fact
    (the same creation, the same resolution) yields the same event, stored once."""
    values: dict[str, Any] = {
        "source": "jira",
        "item_key": f"jira:{payload['issue']['key']}",
        "kind": kind,
        "at": at,
        "item_type": "jira",
        "snapshot": False,
    }
    values.update(extra)
    return DomainEvent(**values)


def _resolves(payload: Payload) -> bool:
    """Whether this delivery is the one that brought the issue to done."""
    if payload.get("webhookEvent") == "jira:issue_created":
        return True
    items = (payload.get("changelog") or {}).get("items") or []
    return any(str(i.get("field")).lower() in ("status", "resolution") for i in items)


def evidence(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    """What an issue payload shows about its issue now, whatever changed.

    Created at `created` by its reporter; the promise it is under (due date, fix version,
    sprint; an undated fix version or future sprint is a sighting, not a promise), dated at the
    delivery's time; and, when its status is done, its resolution. Jira fires the webhook a
    moment after the resolution, so the delivery that resolves dates its promise no later than
    `resolutiondate`: it proves the promise stood at the close. Nothing is read from what the
    payload does not show: no date withdraws nothing (docs/ledger.md, "Evidence from the
    current state").
    `comment_created` sends a trimmed issue and is not read.
    """
    if payload.get("webhookEvent") not in _ISSUE_EVENTS:
        return []
    fields = payload["issue"].get("fields") or {}
    created = parse_time(fields.get("created"))
    if created is None:
        return []
    facts = [_fact(payload, EventKind.OPENED, created, actor=_actor(fields.get("reporter")))]
    close = None
    if _is_done(fields):
        kept = _close(payload, cfg)
        close = _fact(payload, kept.kind, kept.at, resolution=kept.resolution)
    promised, due_at, scope = promise(fields, cfg, _site(payload))
    # A done issue's later payload cannot say whether its date came before the resolution;
    # only the resolving delivery proves that, so only it is read for the promise.
    if (promised or scope) and (close is None or _resolves(payload)):
        created_now = payload.get("webhookEvent") == "jira:issue_created"
        at = created if created_now else event_time(payload)
        if close is not None:
            at = min(at, close.at)
        kind = EventKind.PROMISE_SET if promised else EventKind.PLANNED
        at_close = close is not None and kind is EventKind.PROMISE_SET
        facts.append(
            _fact(
                payload,
                kind,
                at,
                promised_date=promised,
                due_at=due_at,
                scope=scope,
                at_close=at_close,
            )
        )
    if close is not None:
        facts.append(close)
    return facts


Handler = Callable[[Payload, JiraConfig], list[DomainEvent]]

ROUTING: RoutingTable[Handler] = RoutingTable(
    routes={
        ("jira:issue_created", ANY): created,
        ("jira:issue_updated", ANY): updated,
        ("jira:issue_deleted", ANY): deleted,
        ("comment_created", ANY): comment,
        ("jira:version_updated", ANY): version_updated,
        ("sprint_updated", ANY): sprint_updated,
        # A started sprint gives its end date to the issues planned into it (its scope).
        ("sprint_started", ANY): sprint_updated,
    },
    ignored=frozenset(
        {
            ("comment_updated", ANY),
            ("comment_deleted", ANY),
            ("jira:worklog_updated", ANY),
            ("worklog_created", ANY),
            ("worklog_updated", ANY),
            ("worklog_deleted", ANY),
            ("jira:version_created", ANY),  # no issue depends on it yet
            ("jira:version_released", ANY),  # releasing settles nothing; each issue settles
            # Unreleasing changes no date: Jira keeps the version's releaseDate, so the promises
            # that rest on it stand as they were; a date edited with it is its own
            # jira:version_updated.
            ("jira:version_unreleased", ANY),
            ("jira:version_deleted", ANY),  # Jira sends issue updates for the versions it clears
            ("sprint_created", ANY),
            ("sprint_closed", ANY),  # unfinished issues move on and send Sprint changelogs
        }
    ),
)


def _route(payload: Payload) -> tuple[str, str]:
    event, kind = payload.get("webhookEvent"), payload.get("issue_event_type_name")
    for name, value in (("webhookEvent", event), ("issue_event_type_name", kind)):
        if value is not None and not isinstance(value, str):
            raise InvalidPayload(f"{name}: not a string")
    return (event or "", kind or "")


def normalize(payload: Payload, config: JiraConfig = DEFAULT) -> list[DomainEvent]:
    """The domain events of one delivery, or InvalidPayload when a field the handlers read does
    not have its shape (connectors/jira/shapes.py)."""
    if not isinstance(payload, dict):
        raise InvalidPayload("payload: not a JSON object")
    handler = ROUTING.handler(*_route(payload))
    if handler is None:
        return []
    clean = shapes.parse(payload)
    return with_evidence(handler(clean, config), evidence(clean, config))
