"""GitHub webhook payloads become domain events.

Routing is data: `ROUTING` maps (X-GitHub-Event, action) to a small pure handler, and lists what
is received on purpose and dropped; the webhook view and the worker both read it. Whatever the
action, an issue or pull request payload is also read for what it shows now (`evidence`).
Payload reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.github import shapes
from connectors.github.evidence import evidence
from connectors.github.payload import (
    DEFAULT,
    LINKS_KEY,
    GithubConfig,
    Payload,
    due_date,
    item_event,
    item_of,
    login_of,
    milestone_key,
    named_items,
    parse_time,
)
from connectors.routing import ANY, RoutingTable
from connectors.shapes import InvalidPayload
from ledger.events import DomainEvent, EventKind, with_evidence
from trackrecord.logs import get_logger

log = get_logger("connectors.github")


def _promise(payload: Payload, at: str, cfg: GithubConfig) -> DomainEvent:
    milestone = payload.get("milestone") or item_of(payload).get("milestone")
    if milestone is None:
        raise InvalidPayload("milestone: a milestoned action names its milestone")
    return item_event(
        payload,
        EventKind.PROMISE_SET,
        at,
        cfg,
        promised_date=due_date(milestone),
        scope=milestone_key(payload, milestone),
    )


def opened(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    item = item_of(payload)
    events = [
        item_event(
            payload, EventKind.OPENED, item["created_at"], cfg, actor=login_of(item.get("user"))
        )
    ]
    # Born in a milestone: promised at creation. A milestone without a due date is no promise.
    if due_date(item.get("milestone")):
        events.append(_promise(payload, item["created_at"], cfg))
    return events


def milestoned(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    # The payload has no time of its own for this action; updated_at is bumped by it.
    return [_promise(payload, item_of(payload)["updated_at"], cfg)]


def demilestoned(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    scope = milestone_key(payload, payload["milestone"]) if payload.get("milestone") else None
    return [item_event(payload, EventKind.DESCOPED, None, cfg, scope=scope)]


def issue_closed(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    issue = payload["issue"]
    if "pull_request" in issue:
        return []  # the pull_request event says whether it merged; this one cannot
    # state_reason is absent before 2022 and null for API closes: both mean completed.
    reason = issue.get("state_reason") or "completed"
    kind = EventKind.DROPPED if reason in ("not_planned", "duplicate") else EventKind.DELIVERED
    return [item_event(payload, kind, issue.get("closed_at"), cfg, resolution=reason)]


def pr_closed(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    pr = payload["pull_request"]
    if pr.get("merged") or pr.get("merged_at"):
        return [
            item_event(payload, EventKind.DELIVERED, pr.get("merged_at"), cfg, resolution="merged")
        ]
    return [item_event(payload, EventKind.DROPPED, pr.get("closed_at"), cfg, resolution="unmerged")]


def reopened(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    if payload.get("issue", {}).get("pull_request"):
        return []
    # closed_at keeps the old close after a reopen, so only updated_at dates the reopen.
    return [item_event(payload, EventKind.REOPENED, None, cfg)]


def updated(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    return [item_event(payload, EventKind.UPDATED, None, cfg)]


def _deleted_at(cfg: GithubConfig) -> str | None:
    return cfg.received_at.isoformat() if cfg.received_at else None


def deleted(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    return [item_event(payload, EventKind.DELETED, _deleted_at(cfg), cfg)]


def transferred(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    # The issue now lives in another repository (which sends its own `opened`) and no milestone
    # crosses over: here, its promise is withdrawn when it left, a descope before the deadline,
    # still a miss after it. Like a deletion, the payload has no time of its own.
    return [item_event(payload, EventKind.DESCOPED, _deleted_at(cfg), cfg, scope=None)]


def commented(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    comment = payload["comment"]
    return [
        item_event(
            payload,
            EventKind.COMMENTED,
            comment["created_at"],
            cfg,
            actor=login_of(comment.get("user")),
        )
    ]


def milestone_changed(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    """A milestone's due date, keyed by the milestone; the payload does not list its items.

    A deletion withdraws it and `changes.due_on` may clear it. Any other milestone payload
    (created, closed, an edit of the title) states the date as it stands, which heals a lost
    `edited`; without a date it says nothing, because evidence withdraws nothing.
    """
    milestone = payload["milestone"]
    deleted_ = payload.get("action") == "deleted"
    changed = "due_on" in (payload.get("changes") or {})
    if not (deleted_ or changed or due_date(milestone)):
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
            actor=login_of(payload.get("sender")),
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
    if not isinstance(payload, dict):
        return found
    for key in ("issue", "pull_request", "comment"):
        obj = payload.get(key)
        if isinstance(obj, dict) and obj.get("author_association") in TEAM_ASSOCIATIONS:
            user = obj.get("user")
            login = user.get("login") if isinstance(user, dict) else None
            if isinstance(login, str) and 0 < len(login) <= 100:
                found.add(login)
    return found


Handler = Callable[[Payload, GithubConfig], list[DomainEvent]]

ROUTING: RoutingTable[Handler] = RoutingTable(
    routes={
        ("issues", "opened"): opened,
        ("issues", "milestoned"): milestoned,
        ("issues", "demilestoned"): demilestoned,
        ("issues", "closed"): issue_closed,
        ("issues", "reopened"): reopened,
        ("issues", "deleted"): deleted,
        ("issues", "transferred"): transferred,
        # Every other action (edited, labeled, assigned, pinned, ...) still carries the whole
        # issue: its title and size, and the evidence of its milestone and state.
        ("issues", ANY): updated,
        ("pull_request", "opened"): opened,
        ("pull_request", "milestoned"): milestoned,
        ("pull_request", "demilestoned"): demilestoned,
        ("pull_request", "closed"): pr_closed,
        ("pull_request", "reopened"): reopened,
        ("pull_request", ANY): updated,  # synchronize, review_requested, ...
        ("issue_comment", "created"): commented,
        ("issue_comment", ANY): updated,  # edited, deleted: the issue is in the payload too
        # created, edited, closed, opened: the milestone's due date; deleted: none any more.
        ("milestone", ANY): milestone_changed,
    },
    # The webhook view answers a ping itself ("pong"); listed so that the table is complete.
    ignored=frozenset({("ping", ANY)}),
)

# The events the connector reads: anything else is refused (400 unsupported_event), so that a
# hook set to "send me everything" shows the mismatch in GitHub's delivery log. Reconciliation
# redelivers only these.
SUPPORTED_EVENTS = ROUTING.events


def normalize(event: str, payload: Payload, config: GithubConfig = DEFAULT) -> list[DomainEvent]:
    """The domain events of one delivery, or InvalidPayload when a field the handlers read does
    not have its shape (connectors/github/shapes.py)."""
    if not isinstance(payload, dict):
        raise InvalidPayload("payload: not a JSON object")
    action = payload.get("action")
    if action is not None and not isinstance(action, str):
        raise InvalidPayload("action: not a string")
    handler = ROUTING.handler(event, action)
    if handler is None:
        return []
    clean = shapes.parse(event, payload, config.canonical)
    kept, ignored = named_items(clean, config)
    if ignored:
        # Not this client's repository or Jira project: a pull request changes only its own
        # client's record (docs/ledger.md, "Linked deliveries").
        log.warning(
            "github.link_ignored",
            repo=clean["repository"]["full_name"],
            number=clean["pull_request"]["number"],
            ignored=list(ignored),
        )
    clean[LINKS_KEY] = kept
    return with_evidence(handler(clean, config), evidence(event, clean, config))
