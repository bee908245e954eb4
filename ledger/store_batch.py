"""Many deliveries' events applied to the ledger together: the drain's batches (issue 11).

`apply_group` gives the rows `ledger.store.apply_events` gives applied to each delivery in
turn, with a fixed number of statements for the whole group instead of about fifteen per
delivery: the items ensured, locked and loaded in one go, their events inserted in one
executemany, and `refold_many` reads every touched item's events, scope changes, members,
commitment, exclusion and promise changes in one query each, then writes the item rows in one
executemany. Rows are recomputed from every stored event, as `refold` does, so they do not
depend on the order the events arrive in.

Only plain deliveries are grouped (`groupable`): a scope's due date change (which reaches every
item that ever named the scope) and a merged PR's linked deliveries (whose targets depend on
items found by key, in any case) go through `apply_events` alone. The caller groups deliveries
that touch distinct items, so each item's before and after in a group are those of its one
delivery (what postbacks and summaries compare). See docs/benchmarks.md, "third pass".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from ledger import codec
from ledger.events import DomainEvent, EventKind, linked_deliveries
from ledger.exclusions import Exclusion
from ledger.outcomes import Outcome
from ledger.reach import Reach, split_key
from ledger.rows import commitment_values, event_row, insert_ignore, item_values, put_commitment
from ledger.rules import Judge, fold
from ledger.rules import settle as settle_state
from ledger.store_common import (
    DEFAULT_TEAM,
    delivers_promises,
    follow_owner,
    lock_scopes,
    stored_scope,
)
from ledger.tables import Commitment, Item, ItemEvent, PromiseChangeRow, ScopeEvent, TeamMember
from ledger.teams import Directory, Owner
from trackrecord.config import source_index
from trackrecord.logs import get_logger

log = get_logger("ledger.store_batch")

# Core tables, not the mapped classes: a statement on ORM columns goes through the ORM's
# compile and loading steps, which cost more than the query here.
_ITEMS, _EVENTS, _SCOPES = Item.__table__, ItemEvent.__table__, ScopeEvent.__table__
_MEMBERS, _EXCLUDED = TeamMember.__table__, Exclusion.__table__
_DERIVED = ("item_type", "title", "status", "opened_at", "opened_by", "closed_at", "size",
            "story_points", "scope", "links", "first_response_seconds")  # fmt: skip
# One UPDATE for all the group's items, run with a row of parameters per item.
_UPDATE_ITEM = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _DERIVED})
)


@dataclass
class Part:
    """One delivery's events, with what its signature lets it change (`ledger.reach`)."""

    owner: Owner | None
    events: Sequence[DomainEvent]
    reach: Collection[tuple[str, str]] | None = None


def groupable(events: Sequence[DomainEvent]) -> bool:
    return bool(events) and not any(
        e.kind is EventKind.MILESTONE_DUE_CHANGED or linked_deliveries(e) for e in events
    )


def apply_group(
    session: Session, directory: Directory, parts: Sequence[Part], *, now: datetime | None = None
) -> list[set[str]]:
    """Store the parts' events and re-fold every item they touch, once; the item keys each
    part touched (as `apply_events` returns them). Does not commit."""
    now = codec.utc(now or datetime.now(UTC))
    direct: list[dict[str, list[DomainEvent]]] = []
    for part in parts:
        gate, mine = Reach(directory, part.owner, part.reach), defaultdict(list)
        for event in part.events:
            if gate.allows(event.item_key):
                mine[event.item_key].append(event)
            else:
                gate.refuse(event.item_key)
        direct.append(mine)
    lock_scopes(session, {e.scope for part in parts for e in part.events if e.scope})
    kept = _ensure_items(session, directory, sorted({k for mine in direct for k in mine}))
    if not kept:
        return [set() for _ in parts]
    # Locked in key order, as apply_events locks them (PostgreSQL; SQLite has one writer).
    items = [
        SimpleNamespace(**row)
        for row in session.execute(
            select(_ITEMS).where(_ITEMS.c.key.in_(sorted(kept))).order_by(_ITEMS.c.key)
            .with_for_update()
        ).mappings()
    ]  # fmt: skip
    ids = {item.key: item.id for item in items}
    rows = [event_row(ids[k], e) for mine in direct for k, new in mine.items() if k in ids
            for e in new]  # fmt: skip
    insert_ignore(session, ItemEvent, rows, ["item_id", "event_id"])
    links = refold_many(session, directory, items, now)
    pulls = [
        SimpleNamespace(**row)
        for row in session.execute(
            select(_ITEMS).where(
                _ITEMS.c.key.in_(sorted(links)), _ITEMS.c.item_type == "pull_request",
                _ITEMS.c.id.not_in(list(ids.values())),
            )
        ).mappings()
    ] if links else []  # fmt: skip
    if pulls:
        refold_many(session, directory, pulls, now)
    log.info("ledger.applied_group", parts=len(parts), items=len(items))
    return [{k for k in mine if k in ids} for mine in direct]


def refold_many(session: Session, directory: Directory, items: list, now: datetime) -> set[str]:
    """`ledger.store.refold` of each item, with one query per kind of row for them all; the
    keys linked from those that are not pull requests (theirs to settle again, as there)."""
    ids = [item.id for item in items]
    stored: dict[int, list[DomainEvent]] = defaultdict(list)
    for item_id, data in session.execute(
        select(_EVENTS.c.item_id, _EVENTS.c.data).where(_EVENTS.c.item_id.in_(ids))
    ):
        stored[item_id].append(codec.decode(data))
    _pull_scope_events(session, items, stored)
    members = _members(session, {(item.team, item.source) for item in items})
    folded = []
    for item in items:
        team = directory.team(item.team) or DEFAULT_TEAM
        tz = ZoneInfo(team.timezone)
        state = fold(stored[item.id], tz)
        folded.append((item, state, team, tz))
    # Pull requests last: whether one delivers a promise reads the commitments of the items it
    # names, which this group may have just written (`ledger.store.refold`).
    first = [f for f in folded if _kind(*f[:2]) != "pull_request"]
    folded = first + [f for f in folded if _kind(*f[:2]) == "pull_request"]
    _write(session, first, members, now)
    _write(session, folded[len(first) :], members, now)
    return {key for _, state, _, _ in first for key in state.links}


def _kind(item, state) -> str | None:
    return state.item_type or item.item_type  # as the item row will say (`rows.item_values`)


def _write(session: Session, folded: list, members: dict, now: datetime) -> None:
    if not folded:
        return
    ids = [item.id for item, *_ in folded]
    table = Commitment.__table__
    held = {r["item_id"]: r for r in session.execute(
        select(table).where(table.c.item_id.in_(ids))).mappings()}  # fmt: skip
    excluded = set(session.scalars(
        select(_EXCLUDED.c.item_id).where(_EXCLUDED.c.item_id.in_(ids),
                                         _EXCLUDED.c.undone_at.is_(None))
    ))  # fmt: skip
    item_rows, inserts, changes = [], [], {}
    for item, state, team, tz in folded:
        settlement = settle_state(state, now, tz, judge=Judge(team.on_time_basis))
        if (
            state.item_type == "pull_request"
            and settlement.committed
            and delivers_promises(session, state.links, item.client)
        ):
            settlement = replace(settlement, outcome=Outcome.LINKED, judged_against=None)
        known = set(team.members) | members.get((item.team, item.source), set())
        values = item_values(item.item_type, state, known)
        item_rows.append({"b_id": item.id, **{f"b_{k}": v for k, v in values.items()}})
        values = commitment_values(item, state, settlement, team, tz, excluded.__contains__)
        put_commitment(session, item.id, held.get(item.id), values, inserts)
        changes[item.id] = [(codec.utc(c.at), c.promised_date, c.scope)
                            for c in state.promise_history]  # fmt: skip
    session.execute(_UPDATE_ITEM, item_rows)
    for item_id in ids:  # an ORM copy the session holds reads the new values
        held_item = session.identity_map.get(identity_key(Item, item_id))
        if held_item is not None:
            session.expire(held_item)
    if inserts:
        session.execute(insert(table), inserts)
    _write_promise_changes(session, changes)


def _write_promise_changes(session: Session, want: dict[int, list[tuple]]) -> None:
    """Each item's promise changes, rewritten whole where they differ (`write_promise_changes`)."""
    table = PromiseChangeRow.__table__
    have: dict[int, list[tuple]] = defaultdict(list)
    for item_id, at, day, scope in session.execute(
        select(table.c.item_id, table.c.at, table.c.promised_date, table.c.scope)
        .where(table.c.item_id.in_(list(want)))
        .order_by(table.c.item_id, table.c.seq)
    ):
        have[item_id].append((codec.utc(at), day, scope))
    stale = [i for i, rows in want.items() if have.get(i, []) != rows]
    if not stale:
        return
    gone = [i for i in stale if i in have]
    if gone:
        session.execute(delete(table).where(table.c.item_id.in_(gone)))
    rows = [{"item_id": i, "seq": n, "at": at, "promised_date": day, "scope": scope}
            for i in stale for n, (at, day, scope) in enumerate(want[i])]  # fmt: skip
    if rows:
        session.execute(insert(table), rows)


def _pull_scope_events(session: Session, items: list, stored: dict) -> None:
    """Due changes of every scope each item ever named, stored as its own events once
    (`ledger.store._pull_scope_events`, one query for all the items)."""
    wanted = {}
    for item in items:
        scopes = {e.scope for e in stored[item.id] if e.scope}
        own = source_index(item.source, item.source_key)
        wanted[item.id] = scopes | {stored_scope(scope, own) for scope in scopes}
    every = sorted(set().union(*wanted.values()))
    if not every:
        return
    found: dict[str, list] = defaultdict(list)
    for scope, data in session.execute(
        select(_SCOPES.c.scope, _SCOPES.c.data).where(_SCOPES.c.scope.in_(every))
    ):
        found[scope].append(data)
    rows = []
    for item in items:
        if not any(found.get(s) for s in wanted[item.id]):
            continue
        have = {e.event_id for e in stored[item.id]}
        pulled = [codec.decode(d).retarget(item.key) for s in wanted[item.id] for d in found[s]]
        new = list({e.event_id: e for e in pulled if e.event_id not in have}.values())
        stored[item.id] += new
        rows += [event_row(item.id, e) for e in new]
    insert_ignore(session, ItemEvent, rows, ["item_id", "event_id"])


def _members(session: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    teams = sorted({team for team, _ in pairs})
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for team, source, login in session.execute(
        select(_MEMBERS.c.team, _MEMBERS.c.source, _MEMBERS.c.login).where(
            _MEMBERS.c.team.in_(teams)
        )
    ):
        if (team, source) in pairs:
            found[(team, source)].add(login)
    return found


def _ensure_items(session: Session, directory: Directory, keys: list[str]) -> set[str]:
    """`ledger.store._ensure_item` for many keys: the keys that now have an item."""
    if not keys:
        return set()
    c = _ITEMS.c
    found = {r.key: r for r in session.execute(
        select(c.id, c.key, c.team, c.client).where(c.key.in_(keys)))}  # fmt: skip
    kept, new = set(), []
    for key in keys:
        kind, source_key = split_key(key)
        owner, row = directory.owner(kind, source_key), found.get(key)
        if row is not None:
            kept.add(key)
            follow_owner(session, row.id, (row.team, row.client), owner)
        elif owner is None:
            log.info("ledger.item_without_team", item=key)
        else:
            kept.add(key)
            new.append({"key": key, "source": kind, "source_key": source_key, "team": owner.team,
                        "client": owner.client, "status": "open", "links": [],
                        "updated_at": datetime.now(UTC)})  # fmt: skip
    insert_ignore(session, Item, new, ["key"])
    return kept
