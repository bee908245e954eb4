"""The ledger's tables: items as the platforms know them, the events seen for each, and one
commitment row per item with its settlement, kept current by the worker.

Figures are never stored as the only copy: they are derived from `commitments`, which is itself
derived from `item_events` (the fold in ledger.rules), so everything can be recomputed.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.outcomes import PROMISED, Outcome
from trackrecord.models import Base, utcnow


class Item(Base):
    """A GitHub issue or pull request, or a Jira issue: its current state."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # "github:owner/repo#12" or "jira:PLAT-7" (ledger.events item keys). A GitHub issue and
    # pull request share one number space per repository, so one key covers both.
    key: Mapped[str] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(String(255))  # owner/repo or Jira project key
    team: Mapped[str] = mapped_column(String(128), index=True)
    client: Mapped[str] = mapped_column(String(128))
    item_type: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opened_by: Mapped[str | None] = mapped_column(String(255))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    size: Mapped[str | None] = mapped_column(String(16))
    story_points: Mapped[float | None] = mapped_column(Float)
    scope: Mapped[str | None] = mapped_column(String(300), index=True)  # milestone/sprint/version
    links: Mapped[list] = mapped_column(JSON, default=list)
    first_response_seconds: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ItemEvent(Base):
    """Every domain event seen for an item, once (event_id is a hash of its content)."""

    __tablename__ = "item_events"
    __table_args__ = (UniqueConstraint("item_id", "event_id", name="uq_item_events_item_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSON)
    # The milestone/version/sprint a promise event names (0003): "every item that was ever in
    # this scope" is then an index lookup, so a due-date change reaches items that have since
    # moved on (the fold decides whether it applied at its event time).
    scope: Mapped[str | None] = mapped_column(String(300), index=True)


class Commitment(Base):
    """What became of an item's promise (or of an unpromised win). One row per item."""

    __tablename__ = "commitments"
    __table_args__ = (
        # One team's period is an index range: the cost does not grow with other teams' rows.
        Index("ix_commitments_team_promised", "team", "promised_date"),
        Index("ix_commitments_team_settled", "team", "settled_at"),
        Index("ix_commitments_client_promised", "client", "promised_date"),
        # Settlement order (0004): the streaks read a team's rows in this index's order instead
        # of sorting them; outcome and excluded make it covering (an index-only scan).
        Index(
            "ix_commitments_team_settle",
            "team",
            "settle_at",
            "item_id",
            "outcome",
            "excluded",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    team: Mapped[str] = mapped_column(String(128))
    client: Mapped[str] = mapped_column(String(128))
    # The promise judged against (the team's on_time_basis: first or latest), and both ends.
    promised_date: Mapped[date | None] = mapped_column(Date)
    first_promised: Mapped[date | None] = mapped_column(Date)
    latest_promised: Mapped[date | None] = mapped_column(Date)
    promised_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # End of the promised day in the team's timezone: a pending row past it is a miss.
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # ledger.outcomes.Outcome
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the row stands in settlement order (0004), see settle_instant(): written with the
    # row by ledger.store, never by hand.
    settle_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    slip_days: Mapped[int | None] = mapped_column(Integer)
    repromise_count: Mapped[int] = mapped_column(Integer, default=0)
    small: Mapped[bool] = mapped_column(Boolean, default=False)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


def settle_instant(
    *,
    outcome: str,
    promised_date: date | None,
    deadline: datetime | None,
    settled_at: datetime | None,
    delivered_at: datetime | None,
) -> datetime | None:
    """`commitments.settle_at`: the moment a promise is settled as the figures read it, its
    place in settlement order (the streaks) and the moment its trust evidence dates from. The
    one home of this rule: ledger.store writes it with the row, and the figures read the column.

    A settled promise: `settled_at`, else `delivered_at`. A `late` one: its deadline (0005), the
    moment the promise was broken, so a late delivery stands where the miss it was stood and
    delivering late never moves a broken promise later than not delivering (a row with no
    deadline falls back to the above); a `dropped` one dropped after its deadline likewise. An
    open (`pending`) one: its deadline, the moment it becomes a miss if still open then, so the
    value does not change with the clock (`settle_overdue` turning it into a miss settled at the
    deadline keeps it, and so does a late delivery after it) and "overdue at as_of" is
    `settle_at <= as_of` (ledger.reading.overdue). None for rows that are not promises
    (unpromised and linked wins).
    """
    if promised_date is None or outcome not in PROMISED:
        return None
    if outcome == Outcome.PENDING or (outcome == Outcome.LATE and deadline is not None):
        return deadline
    settled = settled_at if settled_at is not None else delivered_at
    if (
        outcome == Outcome.DROPPED
        and deadline is not None
        and settled is not None
        and settled > deadline
    ):
        # Dropped after its deadline: it was already broken at the deadline, like a late one.
        return deadline
    return settled


class PromiseChangeRow(Base):
    """Each promise, re-promise and withdrawal of an item, with its event time: the stored
    `ledger.rules.PromiseChange` values of the item's `promise_history`."""

    __tablename__ = "promise_changes"
    __table_args__ = (UniqueConstraint("item_id", "at", "seq", name="uq_promise_changes"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    promised_date: Mapped[date | None] = mapped_column(Date)  # None: withdrawn (descoped)
    scope: Mapped[str | None] = mapped_column(String(300))


class Exclusion(Base):
    """A lead's audited exclusion of a commitment. Undoing keeps the row (who, when)."""

    __tablename__ = "exclusions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    excluded_by: Mapped[str] = mapped_column(String(255))
    excluded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_by: Mapped[str | None] = mapped_column(String(255))
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undo_reason: Mapped[str | None] = mapped_column(Text)  # 0003: an undo is audited too


class ScopeEvent(Base):
    """A due-date change of a whole milestone, fix version or sprint (0003).

    Kept by scope so that an item joining the scope later, or whose events arrive after the
    change, still folds it in: fan-out alone would depend on arrival order.
    """

    __tablename__ = "scope_events"
    __table_args__ = (UniqueConstraint("scope", "event_id", name="uq_scope_events_scope_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(300))
    event_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict] = mapped_column(JSON)


class TeamMember(Base):
    """People seen acting as members of a team's repositories (0003), for first response.

    Learned from GitHub's `author_association` (OWNER, MEMBER, COLLABORATOR) on the payloads
    themselves, so no organisation API call and no hand-kept list is needed.
    """

    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team", "source", "login", name="uq_team_members"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))
    login: Mapped[str] = mapped_column(String(255))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
