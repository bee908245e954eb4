"""The ledger in the database: store domain events, re-fold each touched item, keep its rows.

`apply_events` is the one way events enter the ledger (webhook worker and backfill alike). It
never commits: the caller's transaction holds the delivery claim and the ledger writes
together. Rows are always recomputed from every stored event of the item (`ledger.rules.fold`),
never patched, so the same set of events gives the same rows whatever the arrival order.
See docs/ledger.md, "Persistence".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ledger import codec
from ledger.events import DomainEvent, EventKind, linked_deliveries
from ledger.exclusions import is_excluded
from ledger.outcomes import Outcome
from ledger.rules import DELIVERED, ItemState, Judge, Settlement, deadline, first_response, fold
from ledger.rules import settle as settle_state
from ledger.tables import (
    Commitment,
    Item,
    ItemEvent,
    PromiseChange,
    ScopeEvent,
    TeamMember,
    settle_instant,
)
from trackrecord.config import Config, Source, TeamModel
from trackrecord.logs import get_logger

log = get_logger("ledger.store")

# Not commitments, but kept as rows so the figures can count wins nobody asked for.
_UNPROMISED_ROWS = frozenset({Outcome.UNPROMISED, Outcome.LINKED})
_DEFAULT_TEAM = TeamModel(name="unconfigured")  # settings of an item whose team is not listed


def apply_events(
    session: Session,
    config: Config,
    source: Source | None,
    events: Sequence[DomainEvent],
    *,
    now: datetime | None = None,
) -> set[str]:
    """Store `events`, re-fold and re-settle every item they touch; return the item keys.

    `source` owns new items whose own repository or project the configuration does not list
    (a PR linking a stranger's issue); None for Jira's site-wide sprint/version deliveries.
    """
    now = codec.utc(now or datetime.now(UTC))
    _lock_scopes(session, {e.scope for e in events if e.scope})
    direct: dict[str, list[DomainEvent]] = defaultdict(list)
    scoped: list[DomainEvent] = []
    for event in events:
        if event.kind is EventKind.MILESTONE_DUE_CHANGED:
            scoped.append(event)
            continue
        direct[event.item_key].append(event)
        for delivery in linked_deliveries(event):
            key = _canonical_key(session, delivery.item_key)
            direct[key].append(delivery if key == delivery.item_key else delivery.retarget(key))

    if scoped:
        _insert_ignore(session, ScopeEvent, [_scope_row(e) for e in scoped], ["scope", "event_id"])
    keys = {key for key in direct if _ensure_item(session, config, source, key)}
    scopes = {e.scope for e in scoped if e.scope}
    if scopes:
        # Every item that ever named the scope, not only those in it now: whether the change
        # applied is the fold's decision at the change's event time, not at arrival time.
        keys |= set(
            session.scalars(
                select(Item.key)
                .join(ItemEvent, ItemEvent.item_id == Item.id)
                .where(ItemEvent.scope.in_(scopes))
                .distinct()
            )
        )
    if not keys:
        return set()
    # Lock in key order: two workers touching the same items queue up instead of deadlocking,
    # and the second reads the first one's events before folding (PostgreSQL; SQLite already
    # serialises writers because process_delivery's first statement is a write).
    items = session.scalars(
        select(Item)
        .where(Item.key.in_(sorted(keys)))
        .order_by(Item.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for item in items:
        new = direct.get(item.key, ())
        if new:
            _insert_ignore(
                session, ItemEvent, [_event_row(item.id, e) for e in new], ["item_id", "event_id"]
            )
        refold(session, config, item, now)
    for pull in _linked_pull_requests(session, items):
        refold(session, config, pull, now)
    log.info("ledger.applied", events=len(events), items=len(items), scopes=len(scopes))
    return {item.key for item in items}


def refold(session: Session, config: Config, item: Item, now: datetime) -> Settlement:
    """Recompute an item's rows from all its stored events (and its scopes' due changes)."""
    team = config.team(item.team)
    tz = ZoneInfo(team.timezone if team else "UTC")
    judge = Judge(team.on_time_basis) if team else Judge.FIRST
    stored = [
        codec.decode(d)
        for d in session.scalars(select(ItemEvent.data).where(ItemEvent.item_id == item.id))
    ]
    stored += _pull_scope_events(session, item, stored)
    state = fold(stored, tz)
    settlement = settle_state(state, now, tz, judge=judge)
    if (
        state.item_type == "pull_request"
        and settlement.committed
        and _delivers_promises(session, state.links)
    ):
        # One promise, one row: a PR in the milestone of the issue it closes delivers that
        # issue's promise; it is not a second commitment (docs/ledger.md, "One promise").
        settlement = replace(settlement, outcome=Outcome.LINKED, judged_against=None)
    # Members: the team's `members` setting (Jira payloads say nothing about membership, so
    # for Jira it is the only source) and the GitHub logins seen acting as members.
    members = set(team.members if team else ()) | set(
        session.scalars(
            select(TeamMember.login).where(
                TeamMember.team == item.team, TeamMember.source == item.source
            )
        )
    )
    _write_item(item, state, members)
    _write_commitment(session, item, state, settlement, team, tz)
    _write_promise_changes(session, item, state)
    return settlement


def _lock_scopes(session: Session, scopes: set[str]) -> None:
    """Serialise writers of one milestone (sprint, version) on PostgreSQL. Without it, a due
    date change and an item joining the milestone, stored by two workers at once, each miss
    the other's uncommitted row, and the item keeps the old date until its next event. Locks
    are taken in a fixed order, before any item lock, so two writers cannot deadlock. SQLite
    needs none: its writers are serialised already."""
    if not scopes or session.get_bind().dialect.name != "postgresql":
        return
    for scope in sorted(scopes):
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(scope))))


def _delivers_promises(session: Session, links: Iterable[str]) -> bool:
    keys = list(links)
    return (
        bool(keys)
        and session.scalar(
            select(func.count())
            .select_from(Commitment)
            .join(Item, Item.id == Commitment.item_id)
            .where(Item.key.in_(keys), Item.item_type != "pull_request")
            .where(Commitment.first_promised.is_not(None))
        )
        > 0
    )


def _linked_pull_requests(session: Session, items: Sequence[Item]) -> list[Item]:
    """Pull requests linked from these items, which must be settled again after them: whether
    a PR counts as its own commitment depends on whether the items it delivers are promised."""
    keys = {k for item in items if item.item_type != "pull_request" for k in item.links or ()}
    if not keys:
        return []
    return list(
        session.scalars(
            select(Item).where(Item.key.in_(sorted(keys)), Item.item_type == "pull_request")
        )
    )


def settle_overdue(session: Session, now: datetime) -> int:
    """Pending commitments whose deadline has passed become missed, settled at the deadline.

    The same answer a re-fold would give at `now`, without waiting for an event: the outcome
    of an open item changes with the clock alone. Does not commit.
    """
    result = session.execute(
        update(Commitment)
        .where(
            Commitment.outcome == Outcome.PENDING.value,
            Commitment.deadline.is_not(None),
            Commitment.deadline <= codec.utc(now),
        )
        .values(
            outcome=Outcome.MISSED.value,
            settled_at=Commitment.deadline,
            # Already the deadline while pending (settle_instant); set again so that the row
            # stays right whatever wrote it before.
            settle_at=Commitment.deadline,
            slip_days=None,
        )
        .execution_options(synchronize_session=False)
    )
    log.info("ledger.settle_overdue", settled=result.rowcount)
    return result.rowcount


def remember_members(session: Session, team: str, source: str, logins: Iterable[str]) -> None:
    """Record people seen acting as members of a team (for first response). Does not commit."""
    rows = [
        {"team": team, "source": source, "login": login, "seen_at": datetime.now(UTC)}
        for login in sorted(set(logins))
    ]
    if rows:
        _insert_ignore(session, TeamMember, rows, ["team", "source", "login"])


def split_key(key: str) -> tuple[str, str]:
    """'github:owner/repo#12' -> ('github', 'owner/repo'); 'jira:PLAT-7' -> ('jira', 'PLAT')."""
    kind, _, rest = key.partition(":")
    return kind, rest.rsplit("#", 1)[0] if kind == "github" else rest.rsplit("-", 1)[0]


def _canonical_key(session: Session, key: str) -> str:
    # GitHub names are case-insensitive, and a PR body may spell the repository its own way.
    if not key.startswith("github:") or session.scalar(select(Item.id).where(Item.key == key)):
        return key
    found = session.scalar(select(Item.key).where(func.lower(Item.key) == key.lower()))
    return found or key


def _ensure_item(session: Session, config: Config, source: Source | None, key: str) -> bool:
    kind, source_key = split_key(key)
    own = config.source(kind, source_key)
    item = session.scalar(select(Item).where(Item.key == key))
    if item is not None:
        # The configuration is the truth about ownership; an unlisted item keeps its team.
        if own is not None and (item.team, item.client) != (own.team, own.client):
            item.team, item.client = own.team, own.client
        return True
    owner = own or source
    if owner is None:
        log.info("ledger.item_without_team", item=key)
        return False
    row = {
        "key": key,
        "source": kind,
        "source_key": source_key,
        "team": owner.team,
        "client": owner.client,
        "status": "open",
        "links": [],
        "updated_at": datetime.now(UTC),
    }
    _insert_ignore(session, Item, [row], ["key"])
    return True


def _insert_ignore(session: Session, model: Any, rows: list[dict], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: a concurrent or repeated insert is not an error."""
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"ledger upserts support SQLite and PostgreSQL, not {dialect}")
    session.execute(insert(model).values(rows).on_conflict_do_nothing(index_elements=keys))


def _event_row(item_id: int, event: DomainEvent) -> dict:
    return {
        "item_id": item_id,
        "event_id": event.event_id,
        "at": event.at,
        "kind": event.kind.value,
        "data": codec.encode(event),
        "scope": event.scope,
    }


def _scope_row(event: DomainEvent) -> dict:
    return {
        "scope": event.scope or event.item_key,
        "event_id": event.event_id,
        "at": event.at,
        "data": codec.encode(event),
    }


def _pull_scope_events(session: Session, item: Item, stored: list[DomainEvent]):
    """Due changes of every scope the item ever named, stored as its own events once."""
    have = {e.event_id for e in stored}
    scopes = {e.scope for e in stored if e.scope}
    if not scopes:
        return []
    found = [
        codec.decode(d).retarget(item.key)
        for d in session.scalars(select(ScopeEvent.data).where(ScopeEvent.scope.in_(scopes)))
    ]
    new = list({e.event_id: e for e in found if e.event_id not in have}.values())
    if new:
        _insert_ignore(
            session, ItemEvent, [_event_row(item.id, e) for e in new], ["item_id", "event_id"]
        )
    return new


def _write_item(item: Item, state: ItemState, members: set[str]) -> None:
    item.item_type = state.item_type or item.item_type
    item.title = state.title
    item.status = state.status
    item.opened_at, item.opened_by = codec.utc(state.opened_at), state.opened_by
    item.closed_at = codec.utc(state.closed_at)
    item.size, item.story_points = state.size, state.story_points
    item.scope = state.scope
    item.links = list(state.links)
    # With no known member (a Jira team without `members`), no comment counts as the team's
    # and first_response stays None rather than guessing.
    wait = first_response(state, members) if state.item_type != "pull_request" else None
    item.first_response_seconds = wait.total_seconds() if wait is not None else None


def _write_commitment(session, item, state, s: Settlement, team: TeamModel | None, tz) -> None:
    row = session.scalar(select(Commitment).where(Commitment.item_id == item.id))
    if not (s.committed or s.outcome in _UNPROMISED_ROWS):
        # No promise and no win (open, or dropped before anyone promised it): not a commitment.
        # A row from an earlier fold goes: it was derived, and the events now say otherwise.
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = Commitment(item_id=item.id)
        session.add(row)
    promised = s.judged_against
    row.team, row.client = item.team, item.client
    row.promised_date = promised
    row.first_promised, row.latest_promised = s.first_promised, s.latest_promised
    row.promised_at = codec.utc(s.promised_at)
    row.deadline = codec.utc(deadline(promised, tz)) if promised else None
    row.outcome = s.outcome.value
    row.settled_at = codec.utc(s.settled_at)
    row.delivered_at = codec.utc(state.closed_at) if state.status == DELIVERED else None
    row.settle_at = settle_instant(
        outcome=row.outcome,
        promised_date=row.promised_date,
        deadline=row.deadline,
        settled_at=row.settled_at,
        delivered_at=row.delivered_at,
    )
    row.slip_days = s.slip_days if s.outcome is Outcome.LATE else None
    row.repromise_count = s.repromise_count
    row.small = _is_small(state, team)
    row.excluded = is_excluded(session, item.id)


def _is_small(state: ItemState, team: TeamModel | None) -> bool:
    # state.size holds only the value; the label is the team's prefix and that value.
    team = team or _DEFAULT_TEAM
    labels = {label.lower() for label in team.small_labels}
    if state.size and f"{team.size_label_prefix}{state.size}".lower() in labels:
        return True
    limit = team.small_max_points
    return state.story_points is not None and state.story_points <= limit


def _write_promise_changes(session: Session, item: Item, state: ItemState) -> None:
    want = [(codec.utc(c.at), c.promised_date, c.scope) for c in state.promise_history]
    rows = session.scalars(
        select(PromiseChange).where(PromiseChange.item_id == item.id).order_by(PromiseChange.seq)
    ).all()
    if [(codec.utc(r.at), r.promised_date, r.scope) for r in rows] == want:
        return
    for row in rows:
        session.delete(row)
    session.flush()
    session.add_all(
        PromiseChange(item_id=item.id, seq=i, at=at, promised_date=day, scope=scope)
        for i, (at, day, scope) in enumerate(want)
    )
