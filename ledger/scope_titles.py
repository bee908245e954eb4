"""Scope titles: the current name of each milestone, fix version or sprint, by scope key.

Written from webhook deliveries (connectors/scope_titles.py finds them, the worker writes them
for the scopes the delivery reached); read by the comments, the summaries and the API. A name
is presentation only: no figure depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import DateTime, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger.rows import insert_ignore
from trackrecord.models import Base, utcnow


class ScopeTitle(Base):
    __tablename__ = "scope_titles"

    scope: Mapped[str] = mapped_column(String(300), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def remember(session: Session, titles: Mapping[str, str]) -> None:
    """Insert or rename, in the caller's transaction; an unchanged title writes nothing."""
    if not titles:
        return
    known = titles_of(session, titles)
    now = utcnow()
    new = [{"scope": s, "title": t, "updated_at": now} for s, t in titles.items() if s not in known]
    if new:
        insert_ignore(session, ScopeTitle, new, ["scope"])
    for scope, title in sorted(titles.items()):
        if scope in known and known[scope] != title:
            session.execute(
                update(ScopeTitle)
                .where(ScopeTitle.scope == scope)
                .values(title=title, updated_at=now)
                .execution_options(synchronize_session=False)
            )


def titles_of(conn, scopes: Iterable[str | None]) -> dict[str, str]:
    """{scope: title} for the scopes that have one. `conn`: a Session or a Connection."""
    wanted = sorted({s for s in scopes if s})
    if not wanted:
        return {}
    rows = conn.execute(
        select(ScopeTitle.scope, ScopeTitle.title).where(ScopeTitle.scope.in_(wanted))
    )
    return dict(rows.all())
