"""An issue or pull request read through the REST API, with its timeline, becomes domain events.

REST issue and pull request objects have the same shape as the webhook's `issue` and
`pull_request`, so each timeline entry is replayed as the webhook payload GitHub would have sent
at that moment and handed to the webhook handlers in `normalize`. The rules therefore hold once
for live and backfilled history, and each event carries the time it happened, not today.
Timeline reference: https://docs.github.com/en/rest/issues/timeline
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.github import normalize
from connectors.github.normalize import DEFAULT, GithubConfig
from ledger.events import DomainEvent

Payload = dict[str, Any]


@dataclass
class History:
    events: list[DomainEvent] = field(default_factory=list)
    # Timeline entries naming a milestone that no longer exists under that title (renamed or
    # deleted): its due date is unknown, so the entry cannot say what was promised.
    unknown_milestones: int = 0
    # People the REST objects show as team (author_association), for first response.
    team: set[str] = field(default_factory=set)


def _payload(repo: str, item: Payload, is_pr: bool, actor: Payload | None, **over) -> Payload:
    body = {**item, **over}
    key = "pull_request" if is_pr else "issue"
    return {key: body, "repository": {"full_name": repo}, "sender": actor}


def item_history(
    repo: str,
    issue: Payload,
    timeline: list[Payload],
    milestones: dict[str, Payload],
    pull: Payload | None = None,
    cfg: GithubConfig = DEFAULT,
) -> History:
    """Domain events for one item.

    `issue` is the REST issue object, `pull` the pull request object when the item is one (it
    alone says merged_at and the head branch), `milestones` maps title -> milestone object
    (timeline entries name a milestone by title only; GitHub keeps titles unique per repo).
    """
    is_pr = pull is not None
    item = {**issue, **(pull or {})}
    out = History()
    for obj in (item, *(e for e in timeline if e.get("event") == "commented")):
        if obj.get("author_association") in normalize.TEAM_ASSOCIATIONS:
            out.team.add(((obj.get("user") or obj.get("actor")) or {}).get("login"))
    out.team.discard(None)

    def emit(handler, actor=None, event_milestone=None, **over) -> None:
        payload = _payload(repo, item, is_pr, actor, **over)
        if event_milestone is not None:
            payload["milestone"] = event_milestone
        out.events.extend(handler(payload, cfg))

    # Opened without its milestone: the timeline has a `milestoned` entry at creation for an
    # item born in one, and only the timeline says when a milestone was really added.
    emit(normalize.opened, item.get("user"), milestone=None)
    closed_seen = False
    for entry in timeline:
        kind, at, actor = entry.get("event"), entry.get("created_at"), entry.get("actor")
        if kind in ("milestoned", "demilestoned"):
            title = (entry.get("milestone") or {}).get("title")
            milestone = milestones.get(title or "")
            if milestone is None:
                out.unknown_milestones += 1
                continue
            handler = normalize.milestoned if kind == "milestoned" else normalize.demilestoned
            after = milestone if kind == "milestoned" else None
            emit(handler, actor, milestone, updated_at=at, milestone=after)
        elif kind == "closed" and not is_pr:
            closed_seen = True
            emit(
                normalize.issue_closed,
                actor,
                closed_at=at,
                state_reason=entry.get("state_reason"),
            )
        elif kind == "closed":
            # A merge also closes the PR in the same second; only an unmerged close drops it.
            if item.get("merged_at") and _same_second(at, item["merged_at"]):
                continue
            closed_seen = True
            emit(normalize.pr_closed, actor, merged=False, merged_at=None, closed_at=at)
        elif kind == "merged" and is_pr:
            closed_seen = True
            emit(normalize.pr_closed, actor, merged=True, merged_at=at)
        elif kind == "reopened":
            emit(normalize.reopened, actor, updated_at=at)
        elif kind == "commented":
            comment = {"created_at": at, "user": entry.get("user") or actor or {}}
            out.events.extend(
                normalize.commented({**_payload(repo, item, is_pr, actor), "comment": comment}, cfg)
            )
    if item.get("state") == "closed" and not closed_seen:
        # The item itself is the authority on how it ended; a timeline may lack the entry
        # (imported or transferred items).
        emit(normalize.pr_closed if is_pr else normalize.issue_closed)
    # The item as it is now: title, size label and closing links for the latest snapshot.
    emit(normalize.updated)
    return out


def _same_second(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return abs((normalize.parse_time(a) - normalize.parse_time(b)).total_seconds()) < 2
