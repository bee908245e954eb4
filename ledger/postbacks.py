"""Comments posted back on settled items (issue 9): one row per (item, kind), the exactly-once
record of a post.

The row is written in the same transaction as the ledger change that settled the item, and only
on the webhook path (`record_settlements`, called by the worker; backfill and reconciliation
never call it), so what decides whether a comment goes out is the path, not the age of the
event. `kind` names the settlement, `settled:<outcome>:<settled_at>`: a replay of the stream
(under any delivery ids) settles the item the same way and inserts nothing, while a reopened
item delivered again is a new settlement and gets its own comment. The row's status is the
claim: a job posts only after moving it from `pending` to `claimed` (README, "Comments on
delivered items").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger import codec
from ledger.outcomes import Outcome
from ledger.rows import insert_ignore  # the ledger's one upsert helper
from ledger.tables import Commitment, Item
from trackrecord.models import Base, utcnow


class PostbackStatus:
    PENDING = "pending"  # recorded, not yet claimed by a job (or handed back for a retry)
    CLAIMED = "claimed"  # a job is posting it; the outcome of its post may be unknown
    POSTED = "posted"  # the comment exists; `comment_id` names it
    FAILED = "failed"  # stopped: item gone or no access (404/410), or retries spent
    SKIPPED = "skipped"  # dry run: rendered and logged, nothing posted
    ALL = (PENDING, CLAIMED, POSTED, FAILED, SKIPPED)


class Postback(Base):
    __tablename__ = "postbacks"
    __table_args__ = (UniqueConstraint("item_id", "kind", name="uq_postbacks_item_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(300))
    team: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=PostbackStatus.PENDING, index=True)
    comment_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)  # the rendered comment, as last rendered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # rate limit
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# The settlements a comment reports. `missed` only from `pending` (the clock passing the
# deadline); an item first seen already overdue is history, not news.
POSTED_OUTCOMES = frozenset(
    {Outcome.EARLY, Outcome.ON_TIME, Outcome.LATE, Outcome.DROPPED, Outcome.MISSED}
)
_OPEN = (None, Outcome.PENDING.value, Outcome.MISSED.value)


def settlement_kind(outcome: str, settled_at: datetime | None) -> str:
    at = codec.utc(settled_at)
    return f"settled:{outcome}:{at.strftime('%Y-%m-%dT%H:%M:%SZ') if at else '-'}"


def outcomes_of(session: Session, keys: Iterable[str]) -> dict[str, str | None]:
    """{item key: its commitment's outcome, None when it has none}; GitHub keys matched in any
    case, as the ledger stores one spelling of them."""
    return outcomes_and_scopes(session, keys)[0]


def outcomes_and_scopes(
    session: Session, keys: Iterable[str]
) -> tuple[dict[str, str | None], set[tuple[str, str]]]:
    """`outcomes_of` the keys, and the (team, scope) of those of them in a scope (the keys
    matched exactly, as `ledger.summaries.scopes_of`), in one query: the drain asks both
    before every delivery."""
    outcomes, where = outcomes_and_scope_of(session, keys)
    return outcomes, set(where.values())


def outcomes_and_scope_of(
    session: Session, keys: Iterable[str]
) -> tuple[dict[str, str | None], dict[str, tuple[str, str]]]:
    """`outcomes_and_scopes`, with the (team, scope) of each key in a scope: a batch of the
    drain asks it once for all its deliveries, and needs each one's scopes."""
    keys = sorted(set(keys))
    if not keys:
        return {}, {}
    exact = set(keys)
    items, held = Item.__table__.c, Commitment.__table__.c  # Core: no ORM loading steps
    rows = session.execute(
        select(items.key, held.outcome, items.team, items.scope)
        .outerjoin(Commitment.__table__, held.item_id == items.id)
        .where(func.lower(items.key).in_([k.lower() for k in keys]))
    ).all()
    outcomes = {key: outcome for key, outcome, _, _ in rows}
    where = {
        key: (team, scope) for key, _, team, scope in rows if scope is not None and key in exact
    }
    return outcomes, where


def record_settlements(
    session: Session,
    before: dict[str, str | None],
    keys: Iterable[str],
    *,
    wanted: Callable[[str, str], bool],
    scopes: set[tuple[str, str]] | None = None,
    where: dict[str, tuple[str, str]] | None = None,
) -> list[int]:
    """Insert a pending postback for every item in `keys` whose commitment has just settled
    (open before, settled now), for which `wanted(team, item key)` is true. Returns the ids of
    the pending rows of those settlements (a replay inserts nothing; its rows are no longer
    pending). Does not commit: it belongs to the caller's transaction. The (team, scope) of
    the items in a scope are added to `scopes` when given (read by the same query)."""
    keys = sorted(set(keys))
    if not keys:
        return []
    items, held = Item.__table__.c, Commitment.__table__.c  # Core: no ORM loading steps
    rows = session.execute(
        select(items.id, items.key, items.team, held.outcome, held.settled_at, items.scope)
        .outerjoin(Commitment.__table__, held.item_id == items.id)
        .where(items.key.in_(keys))
    ).all()
    if scopes is not None:
        scopes.update((row.team, row.scope) for row in rows if row.scope is not None)
    if where is not None:  # the same, by item key
        where.update({row.key: (row.team, row.scope) for row in rows if row.scope is not None})
    found = []
    for item_id, key, team, outcome, settled_at, _ in rows:
        if outcome is None:  # no commitment row
            continue
        was = before.get(key)
        if outcome == was or outcome not in POSTED_OUTCOMES or was not in _OPEN:
            continue
        if outcome == Outcome.MISSED and was != Outcome.PENDING:
            continue
        if wanted(team, key):
            found.append((item_id, key, team, settlement_kind(outcome, settled_at)))
    return insert_pending(session, found)


def insert_pending(session: Session, found: list[tuple[int, str, str, str]]) -> list[int]:
    """INSERT ... ON CONFLICT DO NOTHING the (item_id, item_key, team, kind) rows; the ids of
    those still pending."""
    if not found:
        return []
    rows = [
        {"item_id": i, "item_key": k, "team": t, "kind": kind, "status": PostbackStatus.PENDING,
         "attempts": 0, "created_at": utcnow()}
        for i, k, t, kind in found
    ]  # fmt: skip
    insert_ignore(session, Postback, rows, ["item_id", "kind"])
    ids = []
    for item_id, _, _, kind in found:
        row = session.execute(
            select(Postback.id, Postback.status).where(
                Postback.item_id == item_id, Postback.kind == kind
            )
        ).first()
        if row is not None and row.status == PostbackStatus.PENDING:
            ids.append(row.id)
    return ids


def overdue_pending(session: Session, now: datetime) -> list[tuple[int, str, str, datetime]]:
    """(item id, key, team, deadline) of the pending commitments `settle_overdue` will make
    missed at `now` (the same condition)."""
    return [
        tuple(r)
        for r in session.execute(
            select(Item.id, Item.key, Item.team, Commitment.deadline)
            .join(Commitment, Commitment.item_id == Item.id)
            .where(
                Commitment.outcome == Outcome.PENDING.value,
                Commitment.deadline.is_not(None),
                Commitment.deadline <= codec.utc(now),
            )
        )
    ]
