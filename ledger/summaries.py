"""Living milestone summaries (issue 9): one row per (team, scope), the record of where the
summary lives and which state of the ledger it was last rendered from.

`version` is a counter bumped in the transaction of every webhook delivery that touches an item
of the scope, so a rendering that read version v saw every ledger change up to v. The job
writes to the platform only when its version is newer than `rendered_version`, under the row's
lock (workers/milestone_summary.py): a summary rendered from an older state never overwrites a
newer one (README, "Comments on delivered items").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger.rows import insert_ignore
from ledger.tables import Item
from trackrecord.models import Base, utcnow


class Summary(Base):
    __tablename__ = "summaries"
    __table_args__ = (UniqueConstraint("team", "scope", name="uq_summaries_team_scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer, default=0)  # bumped by deliveries
    rendered_version: Mapped[int] = mapped_column(Integer, default=0)  # what the platform shows
    closed: Mapped[bool] = mapped_column(Boolean, default=False)  # milestone.closed seen
    # Where it lives: "milestone" (the GitHub milestone's description) or the tracking issue's
    # item key; `comment_id` once the tracking issue's comment exists.
    target: Mapped[str | None] = mapped_column(String(300))
    comment_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)  # as last written
    error: Mapped[str | None] = mapped_column(Text)
    # Last bumped or written: relay takes rows left behind for a while, not ones in flight.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def scopes_of(session: Session, keys: Iterable[str]) -> set[tuple[str, str]]:
    """(team, scope) of the items in `keys` that are in a scope."""
    keys = sorted(set(keys))
    if not keys:
        return set()
    rows = session.execute(
        select(Item.team, Item.scope).where(Item.key.in_(keys), Item.scope.is_not(None))
    )
    return {(team, scope) for team, scope in rows}


def bump(session: Session, found: Iterable[tuple[str, str]], *, closed: bool = False) -> None:
    """A newer ledger state for each (team, scope): insert the row if new, add one to its
    version. Part of the caller's transaction."""
    for team, scope in sorted(set(found)):
        row = {"team": team, "scope": scope, "version": 0, "rendered_version": 0,
               "closed": False, "updated_at": utcnow()}  # fmt: skip
        insert_ignore(session, Summary, [row], ["team", "scope"])
        # A newer state clears a recorded failure: the next job tries again (relay skips rows
        # that failed, `workers.milestone_summary.relay_summaries`).
        values = {"version": Summary.version + 1, "error": None, "updated_at": utcnow()}
        if closed:
            values["closed"] = True
        session.execute(
            update(Summary)
            .where(Summary.team == team, Summary.scope == scope)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
