"""Domain events: the only shape the ledger rules ever see.

Connectors turn GitHub and Jira payloads into these; the fold in `ledger.rules` turns a set of
them into an item's state. Nothing here knows about a platform.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum


class EventKind(StrEnum):
    OPENED = "opened"
    # Title, size or links changed; carries a snapshot of the item and nothing else.
    UPDATED = "updated"
    # One kind for first promise and re-promise: whether a date is a re-promise depends on what
    # came before it in event time, which only the fold knows once events are sorted.
    PROMISE_SET = "promise_set"
    # Seen in a milestone (fix version, sprint) that has no date yet. Read from a payload's
    # current state, not from a change: it records the scope, so a date set on it later applies,
    # and withdraws nothing (docs/ledger.md, "Evidence from the current state").
    PLANNED = "planned"
    DESCOPED = "descoped"
    DELIVERED = "delivered"
    DROPPED = "dropped"
    REOPENED = "reopened"
    COMMENTED = "commented"
    DELETED = "deleted"
    # Keyed by the milestone (or Jira version/sprint), not by an item: the payload does not say
    # which items are in it, so persistence fans it out with `DomainEvent.retarget`.
    MILESTONE_DUE_CHANGED = "milestone_due_changed"


# Platforms stamp related events with the same second (GitHub's `updated_at` has no
# fractions); within one second the item's life order is the only safe tie-break.
RANK: dict[EventKind, int] = {
    EventKind.OPENED: 0,
    EventKind.UPDATED: 1,
    EventKind.PROMISE_SET: 2,
    EventKind.PLANNED: 2,
    EventKind.MILESTONE_DUE_CHANGED: 2,
    EventKind.DESCOPED: 3,
    EventKind.DELIVERED: 4,
    EventKind.DROPPED: 4,
    EventKind.REOPENED: 5,
    EventKind.COMMENTED: 6,
    EventKind.DELETED: 7,
}


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to one item (or one milestone) at a point in event time.

    `title`, `size`, `story_points` and `item_type` describe the item as the payload showed it
    at `at`; `snapshot` is False when the event was derived for another item and so says
    nothing about this one's attributes.
    """

    source: str  # "github" | "jira"
    item_key: str  # "github:owner/repo#12", "jira:PLAT-7", or a milestone key
    kind: EventKind
    at: datetime  # tz-aware UTC, whole seconds
    promised_date: date | None = None
    resolution: str | None = None
    size: str | None = None
    story_points: float | None = None
    links: tuple[str, ...] = ()
    actor: str | None = None
    title: str | None = None
    item_type: str | None = None  # "issue" | "pull_request" | "jira"
    scope: str | None = None  # milestone / fix version / sprint key the promise came from
    snapshot: bool = True
    # The instant a promise ends, when the platform gives one (a Jira sprint's endDate). Its
    # calendar day depends on the team's timezone, which a site-wide sprint event cannot know:
    # the fold takes it (`promised_date` then holds the UTC day, for readers without a team).
    due_at: datetime | None = None
    # A promise shown by the payload that reports the item's close: it stood at that close, so
    # it counts for the close in force even if that came a moment before (GitHub closes an
    # issue a second after the merge that delivered it).
    at_close: bool = False

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"event time must be tz-aware: {self.at!r}")
        # One representation per instant, so the content id does not depend on which tzinfo
        # object a connector used; fractions go because ties within a second are broken by
        # rank, and GitHub only has whole seconds anyway.
        object.__setattr__(self, "at", self.at.astimezone(UTC).replace(microsecond=0))
        if self.due_at is not None:
            if self.due_at.tzinfo is None:
                raise ValueError(f"due_at must be tz-aware: {self.due_at!r}")
            object.__setattr__(self, "due_at", self.due_at.astimezone(UTC))

    def promised_day(self, team_tz: tzinfo) -> date | None:
        """The promised calendar day for a team: a due instant's day in its timezone."""
        if self.due_at is not None:
            return self.due_at.astimezone(team_tz).date()
        return self.promised_date

    @property
    def rank(self) -> int:
        return RANK[self.kind]

    @functools.cached_property
    def event_id(self) -> str:
        """Stable id from the content, so a redelivered webhook dedupes to the same event.

        The repr of the fields in order, as `dataclasses.astuple` gives them (every field is a
        plain value or a tuple of strings, so its deep copy reprs the same), without the copy:
        it cost the drain 0.1 ms an event. Computed once per event (the event is frozen)."""
        raw = repr(tuple(getattr(self, f) for f in _FIELDS)).encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        return (self.at, self.rank, self.event_id)

    def retarget(self, item_key: str) -> DomainEvent:
        """The same happening applied to another item (milestone fan-out, linked delivery)."""
        return replace(
            self,
            item_key=item_key,
            title=None,
            size=None,
            story_points=None,
            item_type=None,
            snapshot=False,
        )


_FIELDS = tuple(f.name for f in fields(DomainEvent))


def linked_deliveries(event: DomainEvent) -> list[DomainEvent]:
    """Deliveries a merged pull request makes on the items it names.

    One promise, one row: the PR delivers the linked commitment at its own merge time instead
    of counting as a second win. The back-link lets both views show the same delivery.
    """
    if event.kind is not EventKind.DELIVERED:
        return []
    return [
        replace(
            event.retarget(target),
            resolution=f"linked:{event.item_key}",
            links=(event.item_key,),
        )
        for target in event.links
    ]


# Which action events make an evidence event redundant: the same kind (a dated or undated
# promise both cover an undated sighting) at the same instant for the same scope.
_COVERED_BY: dict[EventKind, frozenset[EventKind]] = {
    EventKind.PLANNED: frozenset({EventKind.PLANNED, EventKind.PROMISE_SET}),
}


def with_evidence(actions: list[DomainEvent], evidence: list[DomainEvent]) -> list[DomainEvent]:
    """The action's own events, then what the payload's current state adds to them.

    Evidence is what every payload shows about its item whatever the action (opened at
    created_at, the promise it is in, its close): a lost delivery then costs a timestamp, not a
    promise. An evidence event the action already states (same kind, instant and scope) is left
    out, and duplicates collapse, so a delivery yields few events.
    """
    out = {e.event_id: e for e in actions}
    for fact in evidence:
        kinds = _COVERED_BY.get(fact.kind, frozenset({fact.kind}))
        if not any(a.kind in kinds and a.at == fact.at and a.scope == fact.scope for a in actions):
            out.setdefault(fact.event_id, fact)
    return list(out.values())
