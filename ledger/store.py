"""The ledger in the database: store domain events, re-fold each touched item, keep its rows.

`apply_events` is the one way events enter the ledger (webhook worker and backfill alike). It
never commits: the caller's transaction holds the delivery claim and the ledger writes
together. Rows are always recomputed from every stored event of the item (`ledger.rules.fold`),
never patched, so the same set of events gives the same rows whatever the arrival order.
See docs/ledger.md, "Persistence".
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
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
    PromiseChangeRow,
    ScopeEvent,
    TeamMember,
    settle_instant,
)
from ledger.teams import Directory, Owner, TeamRules
from trackrecord.config import source_index
from trackrecord.logs import get_logger

log = get_logger("ledger.store")

# Not commitments, but kept as rows so the figures can count wins nobody asked for.
_UNPROMISED_ROWS = frozenset({Outcome.UNPROMISED, Outcome.LINKED})
_DEFAULT_TEAM = TeamRules()  # settings of an item whose team is not listed
_SCOPE_LENGTH = 300  # scope_events.scope


class _Reach:
    """Which items one delivery may change (docs/security.md, "Tenant isolation").

    A delivery from a source may change items of that source's client only, and only of
    sources the configuration lists: whatever else its payload names (a PR body's
    `Fixes other-org/app#50`, another client's Jira key in a title, an item key of another
    project) is ignored and logged. A Jira sprint or version delivery names no source: it may
    reach the items of the sources its signature verified (`sources`, source_index pairs).
    """

    def __init__(
        self,
        directory: Directory,
        source_owner: Owner | None,
        sources: Collection[tuple[str, str]] | None,
    ):
        self.directory, self.owner = directory, source_owner
        self.sources = frozenset(sources or ())

    def allows(self, key: str) -> bool:
        kind, source_key = split_key(key)
        if self.owner is None:
            return source_index(kind, source_key) in self.sources
        own = self.directory.owner(kind, source_key)
        return own is not None and own.client == self.owner.client

    def refuse(self, key: str, *, named_by: str | None = None) -> None:
        log.warning(
            "ledger.foreign_reference",
            item=key,
            named_by=named_by,
            client=self.owner.client if self.owner else None,
        )


def apply_events(
    session: Session,
    directory: Directory,
    source_owner: Owner | None,
    events: Sequence[DomainEvent],
    *,
    now: datetime | None = None,
    reach: Collection[tuple[str, str]] | None = None,
) -> set[str]:
    """Store `events`, re-fold and re-settle every item they touch; return the item keys.

    `directory` holds each team's rules and the owner of each listed source. `source_owner`
    owns the delivery's own source: only items of its client, in sources the directory lists,
    are created or changed; an event or linked delivery for any other item is ignored and
    logged (`ledger.foreign_reference`). None for Jira's site-wide sprint/version deliveries,
    which name no source: `reach` then holds the sources (`source_index` pairs) their signature
    verified, and their changes are stored for those sources' items and reach no others.
    """
    now = codec.utc(now or datetime.now(UTC))
    gate = _Reach(directory, source_owner, reach)
    _lock_scopes(session, {e.scope for e in events if e.scope})
    direct: dict[str, list[DomainEvent]] = defaultdict(list)
    scoped: list[DomainEvent] = []
    for event in events:
        if event.kind is EventKind.MILESTONE_DUE_CHANGED:
            scoped.append(event)
            continue
        if not gate.allows(event.item_key):
            gate.refuse(event.item_key)
            continue
        direct[event.item_key].append(event)
        for delivery in linked_deliveries(event):
            key = _canonical_key(session, delivery.item_key)
            if not gate.allows(key):
                # A link can name anything; it delivers only the delivery's own client's items.
                gate.refuse(key, named_by=event.item_key)
                continue
            direct[key].append(delivery if key == delivery.item_key else delivery.retarget(key))

    scope_rows = [_scope_row(e, source) for e in scoped for source in _scope_owners(gate)]
    if scope_rows:
        _insert_ignore(session, ScopeEvent, scope_rows, ["scope", "event_id"])
    keys = {key for key in direct if _ensure_item(session, directory, key)}
    scopes = {e.scope for e in scoped if e.scope}
    if scopes:
        # Every item that ever named the scope, not only those in it now: whether the change
        # applied is the fold's decision at the change's event time, not at arrival time. Only
        # items the delivery may change: another client's item naming the same scope key is
        # not reached (and does not pull the change: `_pull_scope_events`).
        named = session.scalars(
            select(Item.key)
            .join(ItemEvent, ItemEvent.item_id == Item.id)
            .where(ItemEvent.scope.in_(scopes))
            .distinct()
        )
        keys |= {key for key in named if gate.allows(key)}
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
        refold(session, directory, item, now)
    for pull in _linked_pull_requests(session, items):
        refold(session, directory, pull, now)
    log.info("ledger.applied", events=len(events), items=len(items), scopes=len(scopes))
    return {item.key for item in items}


def refold(session: Session, directory: Directory, item: Item, now: datetime) -> Settlement:
    """Recompute an item's rows from all its stored events (and its scopes' due changes)."""
    team = directory.team(item.team) or _DEFAULT_TEAM
    tz = ZoneInfo(team.timezone)
    judge = Judge(team.on_time_basis)
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
        and _delivers_promises(session, state.links, item.client)
    ):
        # One promise, one row: a PR in the milestone of the issue it closes delivers that
        # issue's promise; it is not a second commitment (docs/ledger.md, "One promise").
        settlement = replace(settlement, outcome=Outcome.LINKED, judged_against=None)
    # Members: the team's `members` setting (Jira payloads say nothing about membership, so
    # for Jira it is the only source) and the GitHub logins seen acting as members.
    members = set(team.members) | set(
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


def _delivers_promises(session: Session, links: Iterable[str], client: str) -> bool:
    # Only the client's own items: a PR naming another client's issue delivers nothing there,
    # and whether that issue was promised must not show in this client's record either.
    keys = list(links)
    return (
        bool(keys)
        and session.scalar(
            select(func.count())
            .select_from(Commitment)
            .join(Item, Item.id == Commitment.item_id)
            .where(Item.key.in_(keys), Item.item_type != "pull_request")
            .where(Item.client == client)
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


def _ensure_item(session: Session, directory: Directory, key: str) -> bool:
    kind, source_key = split_key(key)
    owner = directory.owner(kind, source_key)
    item = session.scalar(select(Item).where(Item.key == key))
    if item is not None:
        # The configuration is the truth about ownership; an unlisted item keeps its team.
        if owner is not None and (item.team, item.client) != (owner.team, owner.client):
            item.team, item.client = owner.team, owner.client
        return True
    if owner is None:
        # Only listed sources' items are created: an item nobody lists has no client, so no
        # delivery may speak for it (`_Reach`).
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


def _scope_owners(gate: _Reach) -> list[tuple[str, str] | None]:
    """For whom a scope change is stored: None (anyone naming the scope) for a delivery from a
    source, whose scope keys carry that source (`github:owner/repo/milestone/3`); each verified
    source for a Jira sprint or version delivery, whose ids are site-wide and which any client
    on the same site could name."""
    return [None] if gate.owner is not None else sorted(gate.sources)


def stored_scope(scope: str, source: tuple[str, str] | None) -> str:
    """`scope_events.scope` of a scope change stored for one source's items alone."""
    if source is None:
        return scope
    key = f"{scope}@{source[0]}:{source[1]}"
    if len(key) > _SCOPE_LENGTH:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _scope_row(event: DomainEvent, source: tuple[str, str] | None) -> dict:
    return {
        "scope": stored_scope(event.scope or event.item_key, source),
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
    # Changes stored for anyone naming the scope, and those stored for the item's own source (a
    # Jira sprint or version change is kept only for the sources its signature verified).
    own = source_index(item.source, item.source_key)
    wanted = scopes | {stored_scope(scope, own) for scope in scopes}
    found = [
        codec.decode(d).retarget(item.key)
        for d in session.scalars(select(ScopeEvent.data).where(ScopeEvent.scope.in_(wanted)))
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


def _write_commitment(session, item, state, s: Settlement, team: TeamRules, tz) -> None:
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
    row.small = team.is_small(state.size, state.story_points)
    row.excluded = is_excluded(session, item.id)


def _write_promise_changes(session: Session, item: Item, state: ItemState) -> None:
    want = [(codec.utc(c.at), c.promised_date, c.scope) for c in state.promise_history]
    rows = session.scalars(
        select(PromiseChangeRow)
        .where(PromiseChangeRow.item_id == item.id)
        .order_by(PromiseChangeRow.seq)
    ).all()
    if [(codec.utc(r.at), r.promised_date, r.scope) for r in rows] == want:
        return
    for row in rows:
        session.delete(row)
    session.flush()
    session.add_all(
        PromiseChangeRow(item_id=item.id, seq=i, at=at, promised_date=day, scope=scope)
        for i, (at, day, scope) in enumerate(want)
    )
