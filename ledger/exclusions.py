"""Audited exclusions: a lead takes a commitment out of the figures, with a reason, and can
undo it. Rows are never deleted; an undo is stamped with who and when, so a report can list
every exclusion ever made and nothing disappears silently.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ledger.tables import Commitment, Exclusion, Item

_GITHUB = re.compile(r"^(?:github:)?(?P<repo>[\w.-]+/[\w.-]+)#(?P<num>\d+)$")
_JIRA = re.compile(r"^(?:jira:)?(?P<key>[A-Za-z][A-Za-z0-9_]+-\d+)$")


class ExclusionError(Exception):
    """Worded for the person at the terminal."""


def item_key(source_id: str) -> str:
    """'github:o/r#12', 'o/r#12' -> 'github:o/r#12'; 'jira:PLAT-7', 'PLAT-7' -> 'jira:PLAT-7'."""
    text = source_id.strip()
    if m := _GITHUB.match(text):
        return f"github:{m['repo']}#{m['num']}"
    if m := _JIRA.match(text):
        return f"jira:{m['key'].upper()}"
    raise ExclusionError(
        f"{source_id!r} is not a source id (like github:owner/repo#12, owner/repo#12, "
        "jira:PLAT-7 or PLAT-7)"
    )


def find_item(session: Session, source_id: str) -> Item:
    key = item_key(source_id)
    item = session.scalar(select(Item).where(Item.key == key))
    if item is None and key.startswith("github:"):
        # GitHub names are case-insensitive; people type them as they remember them.
        item = session.scalar(select(Item).where(func.lower(Item.key) == key.lower()))
    if item is None:
        raise ExclusionError(f"no item {key} in the ledger")
    return item


def active(session: Session, item_id: int) -> list[Exclusion]:
    return list(
        session.scalars(
            select(Exclusion)
            .where(Exclusion.item_id == item_id, Exclusion.undone_at.is_(None))
            .order_by(Exclusion.id)
        )
    )


def is_excluded(session: Session, item_id: int) -> bool:
    # One id, not the ORM rows: every refold asks it.
    return (
        session.scalar(
            select(Exclusion.id)
            .where(Exclusion.item_id == item_id, Exclusion.undone_at.is_(None))
            .limit(1)
        )
        is not None
    )


def exclude(
    session: Session, source_id: str, reason: str, by: str, now: datetime | None = None
) -> Exclusion:
    """Exclude an item's commitment. Does not commit."""
    if not reason.strip():
        raise ExclusionError("a reason is required: the exclusion is shown in reports")
    item = find_item(session, source_id)
    if current := active(session, item.id):
        first = current[0]
        raise ExclusionError(
            f"{item.key} is already excluded (by {first.excluded_by}: {first.reason})"
        )
    row = Exclusion(
        item_id=item.id, reason=reason.strip(), excluded_by=by, excluded_at=now or _now()
    )
    session.add(row)
    session.flush()
    _follow(session, item.id)
    return row


def undo(
    session: Session,
    source_id: str,
    by: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> list[Exclusion]:
    """Undo the active exclusion of an item, keeping the row. Does not commit."""
    item = find_item(session, source_id)
    rows = active(session, item.id)
    if not rows:
        raise ExclusionError(f"{item.key} is not excluded")
    for row in rows:
        row.undone_by, row.undone_at, row.undo_reason = by, now or _now(), reason
    session.flush()
    _follow(session, item.id)
    return rows


def listing(session: Session, team: str | None = None) -> list[tuple[Exclusion, Item]]:
    query = select(Exclusion, Item).join(Item, Item.id == Exclusion.item_id)
    if team:
        query = query.where(Item.team == team)
    return [(e, i) for e, i in session.execute(query.order_by(Exclusion.excluded_at, Exclusion.id))]


def _follow(session: Session, item_id: int) -> None:
    # commitments.excluded is derived from the exclusions, like every other ledger column.
    session.execute(
        update(Commitment)
        .where(Commitment.item_id == item_id)
        .values(excluded=is_excluded(session, item_id))
    )


def _now() -> datetime:
    return datetime.now(UTC)
