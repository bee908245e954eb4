"""What `ledger.store` and `ledger.store_batch` share: the milestone locks, the default team,
whether a pull request delivers promises, and where a scope change is stored."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from ledger.tables import Commitment, Item
from ledger.teams import TeamRules

DEFAULT_TEAM = TeamRules()  # settings of an item whose team is not listed
_SCOPE_LENGTH = 300  # scope_events.scope
_LOCK_SCOPES = text(
    "SELECT pg_advisory_xact_lock(hashtext(s)) FROM"
    ' (SELECT s FROM unnest(CAST(:scopes AS text[])) AS s ORDER BY s COLLATE "C") AS sorted'
)

_TRY_SCOPES = text(
    "SELECT s FROM unnest(CAST(:scopes AS text[])) AS s"
    " WHERE pg_try_advisory_xact_lock(hashtext(s))"
)


def lock_scopes(session: Session, scopes: set[str]) -> None:
    """Serialise writers of one milestone (sprint, version) on PostgreSQL. Without it, a due
    date change and an item joining the milestone, stored by two workers at once, each miss
    the other's uncommitted row, and the item keeps the old date until its next event. Locks
    are taken in a fixed order, before any item lock, so two writers cannot deadlock. SQLite
    needs none: its writers are serialised already."""
    if not scopes or session.get_bind().dialect.name != "postgresql":
        return
    # One statement: the scopes sorted in a subquery, then each locked as it is read, in order.
    session.execute(_LOCK_SCOPES, {"scopes": sorted(scopes)})


def try_lock_scopes(session: Session, scopes: set[str]) -> set[str]:
    """Lock what of `scopes` no other transaction holds, without waiting: the scopes now held
    (all of them on SQLite). A transaction that holds locks only ever tries for more, never
    waits, so it cannot be one of two writers each waiting on the other."""
    if not scopes or session.get_bind().dialect.name != "postgresql":
        return set(scopes)
    return set(session.scalars(_TRY_SCOPES, {"scopes": sorted(scopes)}))


def delivers_promises(session: Session, links: Iterable[str], client: str) -> bool:
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


def stored_scope(scope: str, source: tuple[str, str] | None) -> str:
    """`scope_events.scope` of a scope change stored for one source's items alone."""
    if source is None:
        return scope
    key = f"{scope}@{source[0]}:{source[1]}"
    if len(key) > _SCOPE_LENGTH:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def follow_owner(session: Session, item_id: int, held: tuple[str, str], owner) -> None:
    """Move an item to the team and client the configuration gives it, when they differ from
    `held` (its stored team and client). The configuration is the truth about ownership; an
    item it does not list (`owner` None) keeps its team."""
    if owner is not None and held != (owner.team, owner.client):
        session.execute(
            update(Item)
            .where(Item.id == item_id)
            .values(team=owner.team, client=owner.client)
            .execution_options(synchronize_session="fetch")
        )
