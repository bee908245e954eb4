"""The ledger rules: a pure fold from domain events to an item's state, and its settlement.

The state is recomputed from the full set of events it has seen, sorted by event time and life
rank, so webhooks that arrive twice or out of order converge to the same state. See
docs/ledger.md for every rule and the reason behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from ledger.events import DomainEvent, EventKind
from ledger.outcomes import Outcome

OPEN, DELIVERED, DROPPED = "open", "delivered", "dropped"


class Judge(StrEnum):
    FIRST = "first"
    LATEST = "latest"


@dataclass(frozen=True)
class PromiseChange:
    at: datetime
    promised_date: date | None  # None: the promise was withdrawn (descoped)
    scope: str | None


@dataclass
class ItemState:
    item_key: str
    source: str
    team_tz: str = "UTC"
    item_type: str | None = None
    title: str | None = None
    size: str | None = None
    story_points: float | None = None
    links: tuple[str, ...] = ()
    status: str = OPEN  # open | delivered | dropped
    opened_at: datetime | None = None
    opened_by: str | None = None
    closed_at: datetime | None = None
    closed_on: date | None = None  # calendar day of closed_at in the team's timezone
    resolution: str | None = None
    reopen_count: int = 0
    deleted_at: datetime | None = None
    promise: date | None = None  # the promise in force now
    scope: str | None = None  # where the promise in force came from (milestone key, ...)
    first_promised: date | None = None
    promised_at: datetime | None = None
    descoped_at: datetime | None = None
    promise_history: tuple[PromiseChange, ...] = ()
    comments: tuple[tuple[datetime, str | None], ...] = ()
    events: dict[str, DomainEvent] = field(default_factory=dict, repr=False)

    @property
    def latest_promised(self) -> date | None:
        dates = [c.promised_date for c in self.promise_history if c.promised_date]
        return dates[-1] if dates else None


def fold(events: Iterable[DomainEvent], team_tz: ZoneInfo) -> ItemState:
    unique = {e.event_id: e for e in events}
    if not unique:
        raise ValueError("cannot fold an empty event stream")
    keys = {e.item_key for e in unique.values()}
    if len(keys) != 1:
        raise ValueError(f"events for more than one item: {sorted(keys)}")
    first = next(iter(unique.values()))
    state = ItemState(item_key=first.item_key, source=first.source, team_tz=team_tz.key)
    state.events = unique
    for event in sorted(unique.values(), key=lambda e: e.sort_key):
        if event.due_at is not None:
            # A sprint ends at an instant; the day it ends is the team's, and only the fold knows
            # the team. Item and sprint events alike carry the instant, so both give one day.
            event = replace(event, promised_date=event.promised_day(team_tz))
        _step(state, event)
    if state.closed_at is not None:
        state.closed_on = state.closed_at.astimezone(team_tz).date()
    return state


def _step(s: ItemState, e: DomainEvent) -> None:
    # What kind of item it is never changes, so any event that says so will do.
    s.item_type = e.item_type or s.item_type
    if e.snapshot and e.kind is not EventKind.MILESTONE_DUE_CHANGED:
        # Every webhook carries the whole item, so the latest one in event time is the truth.
        s.title = e.title or s.title
        s.size = e.size
        s.story_points = e.story_points
    if e.links:
        s.links = tuple(sorted(set(s.links) | set(e.links)))
    _STEPS[e.kind](s, e)


def _opened(s: ItemState, e: DomainEvent) -> None:
    if s.opened_at is None:
        s.opened_at, s.opened_by = e.at, e.actor


def _promise(s: ItemState, e: DomainEvent) -> None:
    at = e.at
    if s.status != OPEN:
        # A closed item cannot take on a promise: a milestone added after the close is filing.
        # The promise its closing payload shows is no filing: it stood at that close. When the
        # item was closed a moment before (a linked merge: the first close wins), it counts for
        # the close in force, dated there.
        if not (e.at_close and e.promised_date is not None):
            return
        at = min(e.at, s.closed_at) if s.closed_at else e.at
    if e.promised_date is None:
        # Moved into a milestone (fix version, sprint) without a date: whatever it was in before
        # no longer holds, but the item is in this one now, so a date set on it later
        # (milestone_due_changed) becomes the item's promise then.
        _withdraw(s, e)
        s.scope = e.scope
        return
    if s.first_promised is None:
        s.first_promised, s.promised_at = e.promised_date, at
    if e.promised_date != s.promise:
        s.promise_history += (PromiseChange(at, e.promised_date, e.scope),)
    s.promise, s.scope, s.descoped_at = e.promised_date, e.scope, None


def _planned(s: ItemState, e: DomainEvent) -> None:
    # Seen in an undated milestone (sprint, version): remember where it is, so that the date set
    # on it later applies, but withdraw nothing. A payload may show the item in an undated
    # container while a promise stands (a lost move); evidence is positive only.
    if s.status == OPEN and s.promise is None:
        s.scope = e.scope


def _descoped(s: ItemState, e: DomainEvent) -> None:
    # A milestone move sends demilestoned(old) and milestoned(new) in the same second; rank puts
    # the removal last, so it must only withdraw the promise it names.
    if e.scope is not None and s.scope is not None and e.scope != s.scope:
        return
    _withdraw(s, e)
    if s.status == OPEN:
        s.scope = None  # out of an undated milestone too: its date no longer applies


def _withdraw(s: ItemState, e: DomainEvent) -> None:
    if s.status != OPEN or s.promise is None:
        return
    s.promise_history += (PromiseChange(e.at, None, e.scope),)
    s.promise, s.scope, s.descoped_at = None, None, e.at


def _milestone_due(s: ItemState, e: DomainEvent) -> None:
    if s.scope is not None and e.scope == s.scope:
        _promise(s, e)


def _close(status: str) -> Callable[[ItemState, DomainEvent], None]:
    def step(s: ItemState, e: DomainEvent) -> None:
        # The first close wins; a second one (a linked PR after the issue's own close) is noise.
        if s.status == OPEN:
            s.status, s.closed_at, s.resolution = status, e.at, e.resolution

    return step


def _reopened(s: ItemState, e: DomainEvent) -> None:
    if s.status != OPEN:
        s.status, s.closed_at, s.resolution = OPEN, None, None
        s.reopen_count += 1


def _commented(s: ItemState, e: DomainEvent) -> None:
    s.comments += ((e.at, e.actor),)


def _deleted(s: ItemState, e: DomainEvent) -> None:
    # Deleting an open item abandons it; deleting a finished one does not undo what happened.
    s.deleted_at = e.at
    if s.status == OPEN:
        s.status, s.closed_at, s.resolution = DROPPED, e.at, "deleted"


_STEPS: dict[EventKind, Callable[[ItemState, DomainEvent], None]] = {
    EventKind.OPENED: _opened,
    EventKind.UPDATED: lambda s, e: None,
    EventKind.PROMISE_SET: _promise,
    EventKind.PLANNED: _planned,
    EventKind.MILESTONE_DUE_CHANGED: _milestone_due,
    EventKind.DESCOPED: _descoped,
    EventKind.DELIVERED: _close(DELIVERED),
    EventKind.DROPPED: _close(DROPPED),
    EventKind.REOPENED: _reopened,
    EventKind.COMMENTED: _commented,
    EventKind.DELETED: _deleted,
}


@dataclass(frozen=True)
class Settlement:
    item_key: str
    outcome: Outcome
    committed: bool
    first_promised: date | None
    latest_promised: date | None
    judged_against: date | None
    promised_at: datetime | None
    promise_history: tuple[PromiseChange, ...]
    repromise_count: int
    settled_at: datetime | None
    delivered_on: date | None
    slip_days: int | None  # days from the judged promise to delivery (or to now if missed)
    links: tuple[str, ...]


def deadline(promised: date, team_tz: ZoneInfo) -> datetime:
    """The first instant after the promised day, in the team's timezone."""
    return datetime.combine(promised + timedelta(days=1), time.min, tzinfo=team_tz)


def settle(
    state: ItemState, now: datetime, team_tz: ZoneInfo, *, judge: Judge = Judge.FIRST
) -> Settlement:
    first, latest = state.first_promised, state.latest_promised
    target = first if judge is Judge.FIRST else latest
    closed_on = state.closed_at.astimezone(team_tz).date() if state.closed_at else None

    def result(outcome: Outcome, settled_at: datetime | None, slip: int | None = None):
        return Settlement(
            item_key=state.item_key,
            outcome=outcome,
            committed=first is not None,
            first_promised=first,
            latest_promised=latest,
            judged_against=target,
            promised_at=state.promised_at,
            promise_history=state.promise_history,
            repromise_count=max(0, sum(1 for c in state.promise_history if c.promised_date) - 1),
            settled_at=settled_at,
            delivered_on=closed_on if state.status == DELIVERED else None,
            slip_days=slip,
            links=state.links,
        )

    if target is None:
        if state.status == DELIVERED:
            # Only a pull request delivers other items; an issue it closed carries a link back
            # to it, but that issue's own unpromised completion is still a win of its own.
            delivers_others = state.item_type == "pull_request" and bool(state.links)
            return result(
                Outcome.LINKED if delivers_others else Outcome.UNPROMISED, state.closed_at
            )
        if state.status == DROPPED:
            return result(Outcome.DROPPED, state.closed_at)
        return result(Outcome.PENDING, None)

    due = deadline(target, team_tz)
    # A withdrawal counts only before the deadline; after it the promise was already broken.
    if state.promise is None and state.descoped_at is not None and state.descoped_at < due:
        return result(Outcome.DESCOPED, state.descoped_at)
    if state.status == DELIVERED:
        slip = (closed_on - target).days
        outcome = Outcome.EARLY if slip < 0 else Outcome.ON_TIME if slip == 0 else Outcome.LATE
        return result(outcome, state.closed_at, slip)
    if state.status == DROPPED:
        return result(Outcome.DROPPED, state.closed_at)
    if now >= due:
        return result(Outcome.MISSED, due, (now.astimezone(team_tz).date() - target).days)
    return result(Outcome.PENDING, None)


def first_response(state: ItemState, team: Collection[str]) -> timedelta | None:
    """Time from opening to the first team comment, for items opened outside the team."""
    if state.opened_at is None or state.opened_by in team:
        return None
    times = [at for at, actor in state.comments if actor in team and at >= state.opened_at]
    return min(times) - state.opened_at if times else None
