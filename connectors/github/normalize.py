"""GitHub webhook payloads become domain events.

Routing is data: `ROUTING` maps (X-GitHub-Event, action) to a small pure handler, and lists what
is received on purpose and dropped; the webhook view and the worker both read it. Whatever the
action, an issue or pull request payload is also read for what it shows now (`evidence`).
Payload reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import Any

from connectors.github import links as found_links
from connectors.github import shapes
from connectors.routing import ANY, RoutingTable
from connectors.shapes import InvalidPayload
from ledger.events import DomainEvent, EventKind, with_evidence
from trackrecord.logs import get_logger

log = get_logger("connectors.github")

Payload = dict[str, Any]


@dataclass(frozen=True)
class GithubConfig:
    size_label_prefix: str = "size:"
    size_values: tuple[str, ...] = ("XS", "S", "M", "L", "XL")
    # Every configured repository as the configuration spells it. GitHub names are
    # case-insensitive, so `acme-corp/platform` and `Acme-Corp/Platform` are one repository: item
    # and milestone keys take the configured spelling, or lower case for a repository not
    # listed. None (no configuration: tests, tools) keeps the payload's spelling.
    repositories: frozenset[str] | None = None
    # Lower-case names of the repositories a pull request may close issues in: its client's.
    # None accepts any repository.
    link_repositories: frozenset[str] | None = None
    # Jira projects a pull request may name: its client's. None accepts any KEY-123, which also
    # matches words like UTF-8.
    jira_projects: frozenset[str] | None = None
    # When the delivery arrived. A deletion has no time of its own in the payload (the object's
    # updated_at is its last edit, maybe weeks before), so it is dated by its arrival.
    received_at: datetime | None = None

    @cached_property
    def _spellings(self) -> dict[str, str]:
        return {name.lower(): name for name in self.repositories or ()}

    def canonical(self, repo: str) -> str:
        """The one spelling of a repository's name that item keys use."""
        if self.repositories is None:
            return repo
        return self._spellings.get(repo.lower(), repo.lower())

    def may_link_repository(self, repo: str) -> bool:
        return self.link_repositories is None or repo.lower() in self.link_repositories

    def may_link_jira(self, key: str) -> bool:
        return self.jira_projects is None or key.rsplit("-", 1)[0] in self.jira_projects


DEFAULT = GithubConfig()


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


def _login(user: Payload | None) -> str | None:
    return (user or {}).get("login")


def _size(item: Payload, cfg: GithubConfig) -> str | None:
    prefix = cfg.size_label_prefix.lower()
    for label in item.get("labels") or []:
        name = label.get("name", "")
        if name.lower().startswith(prefix):
            value = name[len(prefix) :].strip().upper()
            if value in cfg.size_values:
                return value
    return None


def named_items(payload: Payload, cfg: GithubConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The items a pull request names (closing keywords in its body, Jira keys in its title and
    branch), split into those it may deliver and those it may not: a pull request reaches only
    its own client's repositories and Jira projects (`GithubConfig.link_repositories`,
    `jira_projects`), so `Fixes beta-org/app#50` in another client's pull request delivers
    nothing there.
    """
    if "pull_request" not in payload:
        return (), ()
    item = payload["pull_request"]
    own = payload["repository"]["full_name"]
    kept: set[str] = set()
    ignored: set[str] = set()
    for repo, number in found_links.closing_refs(item.get("body") or ""):
        if repo is None or repo.lower() == own.lower():
            kept.add(f"github:{own}#{number}")
        else:
            key = f"github:{cfg.canonical(repo)}#{number}"
            (kept if cfg.may_link_repository(repo) else ignored).add(key)
    text = f"{item.get('title') or ''} {(item.get('head') or {}).get('ref') or ''}"
    for key in found_links.jira_keys(text):
        (kept if cfg.may_link_jira(key) else ignored).add(f"jira:{key}")
    return tuple(sorted(kept)), tuple(sorted(ignored))


def _links(payload: Payload) -> tuple[str, ...]:
    # Read once per delivery by `normalize`, which logs what it ignored.
    return payload.get(_LINKS, ())


_LINKS = "_links"  # the clean payload's own key: GitHub's fields never start with "_"


def _identity(payload: Payload) -> dict[str, Any]:
    """Which item a payload is about: its key and whether it is a pull request."""
    item = _item(payload)
    is_pr = "pull_request" in payload or "pull_request" in item
    return {
        "source": "github",
        "item_key": f"github:{payload['repository']['full_name']}#{item['number']}",
        "item_type": "pull_request" if is_pr else "issue",
    }


def _event(
    payload: Payload, kind: EventKind, at: str | None, cfg: GithubConfig, **extra: Any
) -> DomainEvent:
    item = _item(payload)
    fields: dict[str, Any] = {
        **_identity(payload),
        "kind": kind,
        "at": parse_time(at or item["updated_at"]),
        "size": _size(item, cfg),
        "links": _links(payload),
        "actor": _login(payload.get("sender")),
        "title": item.get("title"),
    }
    fields.update(extra)
    return DomainEvent(**fields)


def _promise(payload: Payload, at: str, cfg: GithubConfig) -> DomainEvent:
    milestone = payload.get("milestone") or _item(payload).get("milestone")
    if milestone is None:
        raise InvalidPayload("milestone: a milestoned action names its milestone")
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
        _event(payload, EventKind.OPENED, item["created_at"], cfg, actor=_login(item.get("user")))
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
    return [_event(payload, kind, issue.get("closed_at"), cfg, resolution=reason)]


def pr_closed(payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    pr = payload["pull_request"]
    if pr.get("merged") or pr.get("merged_at"):
        return [_event(payload, EventKind.DELIVERED, pr.get("merged_at"), cfg, resolution="merged")]
    return [_event(payload, EventKind.DROPPED, pr.get("closed_at"), cfg, resolution="unmerged")]


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
            actor=_login(comment.get("user")),
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
            actor=_login(payload.get("sender")),
            title=milestone.get("title"),
            scope=key,
            snapshot=False,
        )
    ]


def _fact(payload: Payload, kind: EventKind, at: str, **extra: Any) -> DomainEvent:
    """An evidence event: no snapshot and no sender, so every payload that shows the same fact
    (the same opening, the same close) yields the same event, stored once."""
    fields: dict[str, Any] = {
        **_identity(payload),
        "kind": kind,
        "at": parse_time(at),
        "snapshot": False,
    }
    fields.update(extra)
    return DomainEvent(**fields)


def _shown_close(payload: Payload, cfg: GithubConfig) -> DomainEvent | None:
    """The close the item's state shows, at its own time, or None while it is open."""
    item = _item(payload)
    if item.get("state") != "closed":
        return None
    if "pull_request" in payload:
        if item.get("merged") or item.get("merged_at"):
            links = _links(payload)  # a merge delivers what the PR names
            return _fact(
                payload, EventKind.DELIVERED, item["merged_at"], resolution="merged", links=links
            )
        if item.get("closed_at"):
            return _fact(payload, EventKind.DROPPED, item["closed_at"], resolution="unmerged")
        return None
    if not item.get("closed_at"):
        return None
    if "pull_request" in item:
        # An issue-shaped pull request (issues, issue_comment) says whether it merged only in
        # `pull_request.merged_at`, which older payloads lack: then it says nothing.
        shape = item.get("pull_request") or {}
        if "merged_at" not in shape:
            return None
        if shape["merged_at"]:
            return _fact(payload, EventKind.DELIVERED, shape["merged_at"], resolution="merged")
        return _fact(payload, EventKind.DROPPED, item["closed_at"], resolution="unmerged")
    reason = item.get("state_reason") or "completed"
    kind = EventKind.DROPPED if reason in ("not_planned", "duplicate") else EventKind.DELIVERED
    return _fact(payload, kind, item["closed_at"], resolution=reason)


def _shown_at(event: str, payload: Payload, close: DomainEvent | None) -> str:
    """When the payload showed the item as it is: its action's own time.

    A closing payload proves the milestone stood at the close, so it dates its promise there
    (the rank puts a promise before a delivery in the same second). A comment may leave the
    issue's updated_at behind, so the later of the two.
    """
    item = _item(payload)
    action = payload.get("action")
    if action == "opened":
        return item["created_at"]
    if action == "closed" and item.get("state") == "closed":
        if close is not None:
            return close.at.isoformat()
        return item.get("closed_at") or item["updated_at"]
    if event == "issue_comment":
        comment = payload.get("comment") or {}
        times = [item["updated_at"], comment.get("updated_at"), comment.get("created_at")]
        return max((t for t in times if t), key=parse_time)
    return item["updated_at"]


def evidence(event: str, payload: Payload, cfg: GithubConfig) -> list[DomainEvent]:
    """What an issue or pull request payload shows about its item, whatever its action.

    Opened at created_at by its author; the milestone it is in (a promise when the milestone has
    a due date, a sighting in an undated one), dated at the payload's own time; and its close,
    at closed_at or merged_at. Nothing is read from what the payload does not show: a payload
    without a milestone withdraws nothing (docs/ledger.md, "Evidence from the current state").
    """
    item = _item(payload) if event in ("issues", "pull_request", "issue_comment") else None
    if not item or not item.get("created_at") or not item.get("updated_at"):
        return []
    opener = _login(item.get("user"))
    facts = [_fact(payload, EventKind.OPENED, item["created_at"], actor=opener)]
    close = _shown_close(payload, cfg)
    milestone = item.get("milestone")
    # A closed item's later payload cannot say whether its milestone came before the close;
    # only the closing payload proves that, so only it is read for the promise.
    closing = payload.get("action") == "closed" and item.get("state") == "closed"
    readable = item.get("state") != "closed" or closing
    if readable and milestone and milestone.get("number") is not None:
        at = _shown_at(event, payload, close)
        scope = milestone_key(payload, milestone)
        if due_date(milestone):
            promised = due_date(milestone)
            at_close = closing and close is not None  # it stood at the close it reports
            facts.append(
                _fact(
                    payload,
                    EventKind.PROMISE_SET,
                    at,
                    promised_date=promised,
                    scope=scope,
                    at_close=at_close,
                )
            )
        else:
            facts.append(_fact(payload, EventKind.PLANNED, at, scope=scope))
    if close is not None:
        facts.append(close)
    return facts


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
    clean[_LINKS] = kept
    return with_evidence(handler(clean, config), evidence(event, clean, config))
