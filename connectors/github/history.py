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
from connectors.github.payload import DEFAULT, GithubConfig, parse_time
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

    Every payload is also read for what it shows (`connectors.github.evidence`: its milestone, its
    state), so each replayed payload shows the item as it stood at that moment, not as it is
    now: the milestone in force, open or closed, merged or not. Today's milestone in an early
    payload would promise what was only filed later, perhaps after the close.
    """
    is_pr = pull is not None
    event, key = ("pull_request", "pull_request") if is_pr else ("issues", "issue")
    now = {**issue, **(pull or {})}
    out = History()
    for obj in (now, *(e for e in timeline if e.get("event") == "commented")):
        if obj.get("author_association") in normalize.TEAM_ASSOCIATIONS:
            out.team.add(((obj.get("user") or obj.get("actor")) or {}).get("login"))
    out.team.discard(None)

    # The item as it stood, changed entry by entry. Opened without its milestone: the timeline
    # has a `milestoned` entry at creation for an item born in one, and only the timeline says
    # when a milestone was really added.
    stood: Payload = {
        **now,
        "milestone": None,
        "state": "open",
        "state_reason": None,
        "closed_at": None,
        "updated_at": now.get("created_at"),
    }
    if is_pr:
        stood.update(merged=False, merged_at=None)

    def replay(action: str, actor: Payload | None, extra: Payload | None = None, **changes):
        stood.update(changes)
        body = {
            "action": action,
            key: dict(stood),
            "repository": {"full_name": repo},
            "sender": actor,
            **(extra or {}),
        }
        out.events.extend(normalize.normalize(event, body, cfg))

    replay("opened", now.get("user"))
    closed_seen = False
    for entry in timeline:
        kind, at, actor = entry.get("event"), entry.get("created_at"), entry.get("actor")
        if kind in ("milestoned", "demilestoned"):
            title = (entry.get("milestone") or {}).get("title")
            milestone = milestones.get(title or "")
            if milestone is None:
                out.unknown_milestones += 1
                continue
            if kind == "milestoned":
                after = milestone
            else:
                # A move sends milestoned(new) and demilestoned(old), in either order: only the
                # removal of the milestone in force leaves the item without one.
                current = (stood.get("milestone") or {}).get("title")
                after = None if current in (None, title) else stood["milestone"]
            replay(kind, actor, {"milestone": milestone}, milestone=after, updated_at=at)
        elif kind == "closed" and not is_pr:
            closed_seen = True
            reason = entry.get("state_reason")
            replay("closed", actor, **_closed(at), state_reason=reason)
        elif kind == "closed":
            # A merge also closes the PR in the same second; only an unmerged close drops it.
            if now.get("merged_at") and _same_second(at, now["merged_at"]):
                continue
            closed_seen = True
            replay("closed", actor, **_closed(at), merged=False, merged_at=None)
        elif kind == "merged" and is_pr:
            closed_seen = True
            replay("closed", actor, **_closed(at), merged=True, merged_at=at)
        elif kind == "reopened":
            # GitHub keeps the old closed_at on a reopened item.
            replay("reopened", actor, state="open", state_reason=None, updated_at=at)
        elif kind == "commented":
            comment = {"created_at": at, "user": entry.get("user") or actor or {}}
            stood["updated_at"] = at
            body = {
                "action": "created",
                key: dict(stood),
                "comment": comment,
                "repository": {"full_name": repo},
                "sender": actor,
            }
            out.events.extend(normalize.normalize("issue_comment", body, cfg))
    if now.get("state") == "closed" and not closed_seen:
        # The item itself is the authority on how it ended; a timeline may lack the entry
        # (imported or transferred items).
        ended = {k: now[k] for k in _END_FIELDS if k in now}
        replay("closed", None, **ended, updated_at=now.get("closed_at") or now.get("updated_at"))
    # The item as it is now, at its last update: title, size label, closing links and today's
    # milestone for the latest snapshot.
    stood.clear()
    stood.update(now)
    replay("edited", None)
    return out


_END_FIELDS = ("state", "state_reason", "closed_at", "merged", "merged_at")


def _closed(at: str) -> Payload:
    return {"state": "closed", "closed_at": at, "updated_at": at}


def _same_second(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return abs((parse_time(a) - parse_time(b)).total_seconds()) < 2
