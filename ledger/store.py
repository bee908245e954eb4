"""The ledger in the database: store domain events, re-fold each touched item, keep its rows.

`apply_events` is the one way events enter the ledger (webhook worker and backfill alike). It
never commits: the caller's transaction holds the delivery claim and the ledger writes
together. Rows are always recomputed from every stored event of the item (`ledger.rules.fold`),
never patched, so the same set of events gives the same rows whatever the arrival order.
See docs/ledger.md, "Persistence".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ledger import codec
from ledger.events import DomainEvent, EventKind, linked_deliveries
from ledger.outcomes import Outcome
from ledger.reach import Reach, split_key
from ledger.rows import (
    event_row,
    insert_ignore,
    write_commitment,
    write_item,
    write_promise_changes,
)
from ledger.rules import Judge, Settlement, fold
from ledger.rules import settle as settle_state
from ledger.store_common import (
    DEFAULT_TEAM,
    delivers_promises,
    follow_owner,
    lock_scopes,
    stored_scope,  # noqa: F401 (read here by callers of ledger.store)
)
from ledger.tables import (
    Commitment,
    Item,
    ItemEvent,
    ScopeEvent,
    TeamMember,
)
from ledger.teams import Directory, Owner
from trackrecord.config import source_index
from trackrecord.logs import get_logger

log = get_logger("ledger.store")


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
    gate = Reach(directory, source_owner, reach)
    lock_scopes(session, {e.scope for e in events if e.scope})
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

    scope_rows = [_scope_row(e, source) for e in scoped for source in gate.scope_owners()]
    if scope_rows:
        insert_ignore(session, ScopeEvent, scope_rows, ["scope", "event_id"])
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
            insert_ignore(
                session, ItemEvent, [event_row(item.id, e) for e in new], ["item_id", "event_id"]
            )
        refold(session, directory, item, now)
    for pull in _linked_pull_requests(session, items):
        refold(session, directory, pull, now)
    log.info("ledger.applied", events=len(events), items=len(items), scopes=len(scopes))
    return {item.key for item in items}


def refold(session: Session, directory: Directory, item: Item, now: datetime) -> Settlement:
    """Recompute an item's rows from all its stored events (and its scopes' due changes)."""
    team = directory.team(item.team) or DEFAULT_TEAM
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
        and delivers_promises(session, state.links, item.client)
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
    write_item(item, state, members)
    write_commitment(session, item, state, settlement, team, tz)
    write_promise_changes(session, item, state)
    return settlement


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
        insert_ignore(session, TeamMember, rows, ["team", "source", "login"])


def _canonical_key(session: Session, key: str) -> str:
    # GitHub names are case-insensitive, and a PR body may spell the repository its own way.
    if not key.startswith("github:") or session.scalar(select(Item.id).where(Item.key == key)):
        return key
    found = session.scalar(select(Item.key).where(func.lower(Item.key) == key.lower()))
    return found or key


def _ensure_item(session: Session, directory: Directory, key: str) -> bool:
    kind, source_key = split_key(key)
    owner = directory.owner(kind, source_key)
    # Three columns, not the ORM object: apply_events loads the item locked just after.
    item = session.execute(select(Item.id, Item.team, Item.client).where(Item.key == key)).first()
    if item is not None:
        follow_owner(session, item.id, (item.team, item.client), owner)
        return True
    if owner is None:
        # Only listed sources' items are created: an item nobody lists has no client, so no
        # delivery may speak for it (`ledger.reach`).
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
    insert_ignore(session, Item, [row], ["key"])
    return True


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
        insert_ignore(
            session, ItemEvent, [event_row(item.id, e) for e in new], ["item_id", "event_id"]
        )
    return new
