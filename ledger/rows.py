"""Writing an item's derived rows from its folded state: the item, its commitment, its promise
changes, its stored events, and the ledger's one upsert helper. Called by `ledger.store`; the
rows are always recomputed whole, never patched.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from ledger import codec
from ledger.events import DomainEvent
from ledger.exclusions import is_excluded
from ledger.outcomes import Outcome
from ledger.rules import DELIVERED, ItemState, Settlement, deadline, first_response
from ledger.tables import Commitment, Item, PromiseChangeRow, settle_instant
from ledger.teams import TeamRules

# Not commitments, but kept as rows so the figures can count wins nobody asked for.
_UNPROMISED_ROWS = frozenset({Outcome.UNPROMISED, Outcome.LINKED})


def insert_ignore(session: Session, model: Any, rows: list[dict], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: a concurrent or repeated insert is not an error.

    One statement per (dialect, table, keys), built once and executed with the rows as
    parameters: a statement carrying its rows as VALUES is compiled again on every call, which
    cost the drain a third of a millisecond per insert (docs/benchmarks.md)."""
    dialect = session.get_bind().dialect.name
    if rows:
        session.execute(_insert_ignore(dialect, model.__table__, tuple(keys)), rows)


@functools.cache
def _insert_ignore(dialect: str, table, keys: tuple[str, ...]):
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"ledger upserts support SQLite and PostgreSQL, not {dialect}")
    return insert(table).on_conflict_do_nothing(index_elements=list(keys))


def event_row(item_id: int, event: DomainEvent) -> dict:
    return {
        "item_id": item_id,
        "event_id": event.event_id,
        "at": event.at,
        "kind": event.kind.value,
        "data": codec.encode(event),
        "scope": event.scope,
    }


def write_item(item: Item, state: ItemState, members: set[str]) -> None:
    for name, value in item_values(item.item_type, state, members).items():
        setattr(item, name, value)


def item_values(item_type: str | None, state: ItemState, members: set[str]) -> dict:
    """The item row's derived columns from its folded state."""
    # With no known member (a Jira team without `members`), no comment counts as the team's
    # and first_response stays None rather than guessing.
    wait = first_response(state, members) if state.item_type != "pull_request" else None
    return {
        "item_type": state.item_type or item_type,
        "title": state.title,
        "status": state.status,
        "opened_at": codec.utc(state.opened_at),
        "opened_by": state.opened_by,
        "closed_at": codec.utc(state.closed_at),
        "size": state.size,
        "story_points": state.story_points,
        "scope": state.scope,
        "links": list(state.links),
        "first_response_seconds": wait.total_seconds() if wait is not None else None,
    }


def write_commitment(session, item, state, s: Settlement, team: TeamRules, tz) -> None:
    """The item's commitment row from its settlement: inserted, updated in the columns that
    changed (none, most often, when an event changes nothing the row shows), or deleted.

    Core statements, not ORM objects: the drain writes one per delivery, and the unit of work
    cost more than the rest of the refold (docs/benchmarks.md). An ORM copy of the row the
    session holds is expired, so it reads the new values."""
    table = Commitment.__table__
    row = session.execute(select(table).where(table.c.item_id == item.id)).mappings().first()
    values = commitment_values(item, state, s, team, tz, lambda i: is_excluded(session, i))
    put_commitment(session, item.id, row, values)


def commitment_values(item, state: ItemState, s: Settlement, team: TeamRules, tz, excluded):
    """The commitment row's columns from a settlement, or None when the item has none.
    `excluded(item id)`: asked only when there is a row to write."""
    if not (s.committed or s.outcome in _UNPROMISED_ROWS):
        # No promise and no win (open, or dropped before anyone promised it): not a commitment.
        return None
    promised = s.judged_against
    values = {
        "team": item.team,
        "client": item.client,
        "promised_date": promised,
        "first_promised": s.first_promised,
        "latest_promised": s.latest_promised,
        "promised_at": codec.utc(s.promised_at),
        "deadline": codec.utc(deadline(promised, tz)) if promised else None,
        "outcome": s.outcome.value,
        "settled_at": codec.utc(s.settled_at),
        "delivered_at": codec.utc(state.closed_at) if state.status == DELIVERED else None,
        "slip_days": s.slip_days if s.outcome is Outcome.LATE else None,
        "repromise_count": s.repromise_count,
        "small": team.is_small(state.size, state.story_points),
        "excluded": excluded(item.id),
    }
    values["settle_at"] = settle_instant(
        outcome=values["outcome"],
        promised_date=promised,
        deadline=values["deadline"],
        settled_at=values["settled_at"],
        delivered_at=values["delivered_at"],
    )
    return values


def put_commitment(session, item_id: int, row, values: dict | None, inserts=None) -> None:
    """Write `values` over the stored `row` (a mapping, or None): delete when values is None,
    insert when row is None (into `inserts` when given, for one executemany), else update the
    columns that changed."""
    table = Commitment.__table__
    if values is None:
        # A row from an earlier fold goes: it was derived, and the events now say otherwise.
        if row is not None:
            session.execute(delete(table).where(table.c.id == row["id"]))
            _expire(session, row["id"])
        return
    if row is None:
        if inserts is not None:
            inserts.append({**values, "item_id": item_id})
        else:
            session.execute(insert(table), [{**values, "item_id": item_id}])
        return
    changed = {k: v for k, v in values.items() if not _same(row[k], v)}
    if changed:
        session.execute(update(table).where(table.c.id == row["id"]).values(changed))
        _expire(session, row["id"])


def _same(stored, new) -> bool:
    # SQLite hands back naive UTC datetimes; the values written are aware UTC.
    if isinstance(stored, datetime) and isinstance(new, datetime):
        return codec.utc(stored) == new
    return stored == new


def _expire(session: Session, row_id: int) -> None:
    held = session.identity_map.get(identity_key(Commitment, row_id))
    if held is not None:
        session.expire(held)


def write_promise_changes(session: Session, item: Item, state: ItemState) -> None:
    """The item's promise changes, rewritten whole when they differ (Core, as the commitment)."""
    table = PromiseChangeRow.__table__
    want = [(codec.utc(c.at), c.promised_date, c.scope) for c in state.promise_history]
    rows = session.execute(
        select(table.c.at, table.c.promised_date, table.c.scope)
        .where(table.c.item_id == item.id)
        .order_by(table.c.seq)
    ).all()
    if [(codec.utc(at), day, scope) for at, day, scope in rows] == want:
        return
    if rows:
        session.execute(delete(table).where(table.c.item_id == item.id))
    if want:
        session.execute(
            insert(table),
            [
                {"item_id": item.id, "seq": i, "at": at, "promised_date": day, "scope": scope}
                for i, (at, day, scope) in enumerate(want)
            ],
        )
