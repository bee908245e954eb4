"""What a GitHub issue or pull request payload shows about its item, whatever its action: when
it was opened and by whom, the milestone it is in, and how it ended (docs/ledger.md, "Evidence
from the current state"). A lost delivery then costs a timestamp, not a promise.
"""

from __future__ import annotations

from typing import Any

from connectors.github.payload import (
    GithubConfig,
    Payload,
    due_date,
    identity,
    item_of,
    links_of,
    login_of,
    milestone_key,
    parse_time,
)
from ledger.events import DomainEvent, EventKind


def fact(payload: Payload, kind: EventKind, at: str, **extra: Any) -> DomainEvent:
    """An evidence event: no snapshot and no sender, so every payload that shows the same fact
    (the same opening, the same close) yields the same event, stored once."""
    fields: dict[str, Any] = {
        **identity(payload),
        "kind": kind,
        "at": parse_time(at),
        "snapshot": False,
    }
    fields.update(extra)
    return DomainEvent(**fields)


def shown_close(payload: Payload, cfg: GithubConfig) -> DomainEvent | None:
    """The close the item's state shows, at its own time, or None while it is open."""
    item = item_of(payload)
    if item.get("state") != "closed":
        return None
    if "pull_request" in payload:
        if item.get("merged") or item.get("merged_at"):
            links = links_of(payload)  # a merge delivers what the PR names
            return fact(
                payload, EventKind.DELIVERED, item["merged_at"], resolution="merged", links=links
            )
        if item.get("closed_at"):
            return fact(payload, EventKind.DROPPED, item["closed_at"], resolution="unmerged")
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
            return fact(payload, EventKind.DELIVERED, shape["merged_at"], resolution="merged")
        return fact(payload, EventKind.DROPPED, item["closed_at"], resolution="unmerged")
    reason = item.get("state_reason") or "completed"
    kind = EventKind.DROPPED if reason in ("not_planned", "duplicate") else EventKind.DELIVERED
    return fact(payload, kind, item["closed_at"], resolution=reason)


def shown_at(event: str, payload: Payload, close: DomainEvent | None) -> str:
    """When the payload showed the item as it is: its action's own time.

    A closing payload proves the milestone stood at the close, so it dates its promise there
    (the rank puts a promise before a delivery in the same second). A comment may leave the
    issue's updated_at behind, so the later of the two.
    """
    item = item_of(payload)
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
    item = item_of(payload) if event in ("issues", "pull_request", "issue_comment") else None
    if not item or not item.get("created_at") or not item.get("updated_at"):
        return []
    opener = login_of(item.get("user"))
    facts = [fact(payload, EventKind.OPENED, item["created_at"], actor=opener)]
    close = shown_close(payload, cfg)
    milestone = item.get("milestone")
    # A closed item's later payload cannot say whether its milestone came before the close;
    # only the closing payload proves that, so only it is read for the promise.
    closing = payload.get("action") == "closed" and item.get("state") == "closed"
    readable = item.get("state") != "closed" or closing
    if readable and milestone and milestone.get("number") is not None:
        at = shown_at(event, payload, close)
        scope = milestone_key(payload, milestone)
        if due_date(milestone):
            promised = due_date(milestone)
            at_close = closing and close is not None  # it stood at the close it reports
            facts.append(
                fact(
                    payload,
                    EventKind.PROMISE_SET,
                    at,
                    promised_date=promised,
                    scope=scope,
                    at_close=at_close,
                )
            )
        else:
            facts.append(fact(payload, EventKind.PLANNED, at, scope=scope))
    if close is not None:
        facts.append(close)
    return facts
