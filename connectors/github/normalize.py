"""GitHub webhook payloads become domain events.

Routing is data: `ROUTES` maps (X-GitHub-Event, action) to a small pure handler; pairs that
carry nothing for the ledger are listed in `IGNORED`. Payload reference:
https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ledger.events import DomainEvent, EventKind

Payload = dict[str, Any]


@dataclass(frozen=True)
class GithubConfig:
    size_label_prefix: str = "size:"
    size_values: tuple[str, ...] = ("XS", "S", "M", "L", "XL")
    # Project keys a PR may name; None accepts any KEY-123, which also matches words like UTF-8.
    jira_projects: frozenset[str] | None = None
    # When the delivery arrived. A deletion has no time of its own in the payload (the object's
    # updated_at is its last edit, maybe weeks before), so it is dated by its arrival.
    received_at: datetime | None = None


DEFAULT = GithubConfig()

# https://docs.github.com/en/issues/tracking-your-work-with-issues/linking-a-pull-request-to-an-issue
_CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+"
    r"(?:https://github\.com/)?(?P<repo>[\w.-]+/[\w.-]+)?(?:#|/issues/)(?P<num>\d+)",
    re.IGNORECASE,
)
_JIRA_KEY = re.compile(r"(?<![A-Za-z0-9])([A-Z][A-Z0-9_]+-\d+)(?![0-9])")


def parse_time(value: str | None) -> datetime | None:
    """GitHub sends ISO 8601 in UTC with a Z; whole seconds already."""
    return datetime.fromisoformat(value) if value else None


def due_date(milestone: Payload | None) -> date | None:
    """The promised calendar date of a milestone.

    GitHub stores a milestone's due date as a day but sends it as a timestamp at midnight
    US Pacific, so it arrives as 07:00Z or 08:00Z. Its UTC calendar date is the day the user
    picked; converting to the team's timezone would move it a day back west of UTC-7.
    """
    if not milestone or not milestone.get("due_on"):
        return None
    return datetime.fromisoformat(milestone["due_on"]).date()


def milestone_key(payload: Payload, milestone: Payload) -> str:
    # The number is stable across renames, unlike the title.
    return f"github:{payload['repository']['full_name']}/milestone/{milestone['number']}"


def _item(payload: Payload) -> Payload:
    return payload.get("pull_request") or payload["issue"]


def _size(item: Payload, cfg: GithubConfig) -> str | None:
    prefix = cfg.size_label_prefix.lower()
    for label in item.get("labels") or []:
        name = label.get("name", "")
        if name.lower().startswith(prefix):
            value = name[len(prefix) :].strip().upper()
            if value in cfg.size_values:
                return value
    return None


def _links(payload: Payload, item: Payload, cfg: GithubConfig) -> tuple[str, ...]:
    if "pull_request" not in payload:
        return ()
    repo = payload["repository"]["full_name"]
    found = {
        f"github:{m['repo'] or repo}#{m['num']}" for m in _CLOSING.finditer(item.get("body") or "")
    }
    text = f"{item.get('title') or ''} {(item.get('head') or {}).get('ref') or ''}"
    for key in _JIRA_KEY.findall(text):
        if cfg.jira_projects is None or key.split("-")[0] in cfg.jira_projects:
            found.add(f"jira:{key}")
    return tuple(sorted(found))


def _event(
    payload: Payload, kind: EventKind, at: str | None, cfg: GithubConfig, **extra: Any
) -> DomainEvent:
    item = _item(payload)
    is_pr = "pull_request" in payload or "pull_request" in item
    fields: dict[str, Any] = {
        "source": "github",
        "item_key": f"github:{payload['repository']['full_name']}#{item['number']}",
        "kind": kind,
        "at": parse_time(at or item["updated_at"]),
        "size": _size(item, cfg),
        "links": _links(payload, item, cfg),
        "actor": (payload.get("sender") or {}).get("login"),
        "title": item.get("title"),
        "item_type": "pull_request" if is_pr else "issue",
    }
    fields.update(extra)
    return DomainEvent(**fields)


def _promise(payload: Payload, at: str, cfg: GithubConfig) -> DomainEvent:
    milestone = payload.get("milestone") or _item(payload).get("milestone")
    return _event(
        payload,
        EventKind.PROMISE_SET,
        at,
        cfg,
        promised_date=due_date(milestone),
        scope=milestone_key(payload, milestone),
    )


def opened(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    item = _item(payload)
    events = [
        _event(payload, EventKind.OPENED, item["created_at"], cfg, actor=item["user"]["login"])
    ]
    # Born in a milestone: promised at creation. A milestone without a due date is no promise.
    if due_date(item.get("milestone")):
        events.append(_promise(payload, item["created_at"], cfg))
    return events


def milestoned(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    # The payload has no time of its own for this action; updated_at is bumped by it.
    return [_promise(payload, _item(payload)["updated_at"], cfg)]


def demilestoned(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    scope = milestone_key(payload, payload["milestone"]) if payload.get("milestone") else None
    return [_event(payload, EventKind.DESCOPED, None, cfg, scope=scope)]


def issue_closed(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    issue = payload["issue"]
    if "pull_request" in issue:
        return []  # the pull_request event says whether it merged; this one cannot
    # state_reason is absent before 2022 and null for API closes: both mean completed.
    reason = issue.get("state_reason") or "completed"
    kind = EventKind.DROPPED if reason in ("not_planned", "duplicate") else EventKind.DELIVERED
    return [_event(payload, kind, issue["closed_at"], cfg, resolution=reason)]


def pr_closed(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    pr = payload["pull_request"]
    if pr.get("merged") or pr.get("merged_at"):
        return [_event(payload, EventKind.DELIVERED, pr["merged_at"], cfg, resolution="merged")]
    return [_event(payload, EventKind.DROPPED, pr["closed_at"], cfg, resolution="unmerged")]


def reopened(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    if payload.get("issue", {}).get("pull_request"):
        return []
    # closed_at keeps the old close after a reopen, so only updated_at dates the reopen.
    return [_event(payload, EventKind.REOPENED, None, cfg)]


def updated(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    return [_event(payload, EventKind.UPDATED, None, cfg)]


def _deleted_at(cfg: GithubConfig) -> str | None:
    return cfg.received_at.isoformat() if cfg.received_at else None


def deleted(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    return [_event(payload, EventKind.DELETED, _deleted_at(cfg), cfg)]


def transferred(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    # The issue now lives in another repository (which sends its own `opened`) and no milestone
    # crosses over: here, its promise is withdrawn when it left, a descope before the deadline,
    # still a miss after it. Like a deletion, the payload has no time of its own.
    return [_event(payload, EventKind.DESCOPED, _deleted_at(cfg), cfg, scope=None)]


def commented(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    comment = payload["comment"]
    return [
        _event(
            payload,
            EventKind.COMMENTED,
            comment["created_at"],
            cfg,
            actor=comment["user"]["login"],
        )
    ]


def milestone_changed(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    """A new due date for a whole milestone; the payload does not list the items in it."""
    milestone = payload["milestone"]
    deleted_ = payload["action"] == "deleted"
    if not deleted_ and "due_on" not in (payload.get("changes") or {}):
        return []
    key = milestone_key(payload, milestone)
    return [
        DomainEvent(
            source="github",
            item_key=key,
            kind=EventKind.MILESTONE_DUE_CHANGED,
            at=parse_time((deleted_ and _deleted_at(cfg)) or milestone["updated_at"]),
            # A deleted milestone promises nothing any more: its items are descoped.
            promised_date=None if deleted_ else due_date(milestone),
            actor=(payload.get("sender") or {}).get("login"),
            title=milestone.get("title"),
            scope=key,
            snapshot=False,
        )
    ]


# author_association values that make a person part of the team for first response.
# https://docs.github.com/en/graphql/reference/enums#commentauthorassociation
TEAM_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


def team_logins(payload: Payload) -> set[str]:
    """Logins the payload itself shows as team: issue/PR author and comment author.

    Each item's own payloads name the association of its opener and of every commenter, so an
    item's first response needs no organisation API call and no hand-kept member list.
    """
    found: set[str] = set()
    for key in ("issue", "pull_request", "comment"):
        obj = payload.get(key)
        if isinstance(obj, dict) and obj.get("author_association") in TEAM_ASSOCIATIONS:
            login = (obj.get("user") or {}).get("login")
            if login:
                found.add(login)
    return found


Handler = Callable[[Payload, GithubConfig], list[DomainEvent]]

ROUTES: dict[tuple[str, str], Handler] = {
    ("issues", "opened"): opened,
    ("issues", "milestoned"): milestoned,
    ("issues", "demilestoned"): demilestoned,
    ("issues", "closed"): issue_closed,
    ("issues", "reopened"): reopened,
    ("issues", "edited"): updated,
    ("issues", "labeled"): updated,
    ("issues", "unlabeled"): updated,
    ("issues", "deleted"): deleted,
    ("issues", "transferred"): transferred,
    ("pull_request", "opened"): opened,
    ("pull_request", "milestoned"): milestoned,
    ("pull_request", "demilestoned"): demilestoned,
    ("pull_request", "closed"): pr_closed,
    ("pull_request", "reopened"): reopened,
    ("pull_request", "edited"): updated,
    ("pull_request", "labeled"): updated,
    ("pull_request", "unlabeled"): updated,
    ("issue_comment", "created"): commented,
    ("milestone", "edited"): milestone_changed,
    ("milestone", "deleted"): milestone_changed,
}

# Received, understood, and deliberately without effect on the ledger.
IGNORED: frozenset[tuple[str, str]] = frozenset(
    {
        ("ping", ""),
        ("milestone", "created"),  # an empty milestone promises nothing yet
        ("milestone", "opened"),
        ("milestone", "closed"),  # closing a milestone settles nothing; items settle each
        ("issues", "assigned"),
        ("issues", "unassigned"),
        ("issues", "pinned"),
        ("issues", "unpinned"),
        ("issues", "locked"),
        ("issues", "unlocked"),
        ("issue_comment", "edited"),
        ("issue_comment", "deleted"),
        ("pull_request", "assigned"),
        ("pull_request", "unassigned"),
        ("pull_request", "synchronize"),
        ("pull_request", "ready_for_review"),
        ("pull_request", "converted_to_draft"),
        ("pull_request", "review_requested"),
        ("pull_request", "review_request_removed"),
        ("pull_request", "auto_merge_enabled"),
        ("pull_request", "auto_merge_disabled"),
    }
)


def classify(event: str, action: str | None) -> str:
    """'routed', 'ignored' or 'unknown', so intake can record why nothing happened."""
    key = (event, action or "")
    return "routed" if key in ROUTES else "ignored" if key in IGNORED else "unknown"


def normalize(event: str, payload: Payload, config: GithubConfig = DEFAULT) -> list[DomainEvent]:
    handler = ROUTES.get((event, payload.get("action") or ""))
    return handler(payload, config) if handler else []
