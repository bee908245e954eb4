"""Jira webhook payloads become domain events.

Routing is data: `ROUTING` maps (webhookEvent, issue_event_type_name) to a small pure handler,
with "*" as the type wildcard, and lists what is received on purpose and dropped; the webhook
view and the worker both read it. Every issue payload is also read for what it shows now
(`evidence`): due date, fix versions, sprint, status.
Payload reference: https://developer.atlassian.com/server/jira/platform/webhooks/
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from connectors.jira import shapes
from connectors.jira.fields import (
    DEFAULT,
    PROMISE_FIELDS,
    JiraConfig,
    Payload,
    event_time,
    parse_time,
    promise,
    scope_key,
    site_of_issue,
    story_points,
)
from connectors.routing import ANY, RoutingTable
from connectors.shapes import InvalidPayload, site_host
from ledger.events import DomainEvent, EventKind, with_evidence


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
        "story_points": story_points(fields.get(cfg.story_points_field)),
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
    promised, due_at, scope = promise(payload["issue"]["fields"], cfg, site_of_issue(payload))
    kind = EventKind.PROMISE_SET if promised or scope else EventKind.DESCOPED
    return _event(payload, kind, at, cfg, promised_date=promised, due_at=due_at, scope=scope)


def created(payload: Payload, cfg: JiraConfig) -> list[DomainEvent]:
    fields = payload["issue"]["fields"]
    at = parse_time(fields.get("created")) or event_time(payload)
    events = [_event(payload, EventKind.OPENED, at, cfg, actor=_actor(fields.get("reporter")))]
    if any(promise(fields, cfg, site_of_issue(payload))):
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
    if names & PROMISE_FIELDS or (cfg.sprint_field and cfg.sprint_field.lower() in names):
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
    promised, due_at, scope = promise(fields, cfg, site_of_issue(payload))
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
