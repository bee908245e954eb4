"""Tables. The database, not Redis, is the source of truth for every delivery."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class DeliveryStatus:
    PENDING = "pending"  # stored, not yet handed to Redis (Redis was down, or in between)
    QUEUED = "queued"  # a job for it was put on the queue
    PROCESSED = "processed"  # the job finished; never processed again
    FAILED = "failed"  # the job kept failing; an operator looks at `error`
    ALL = (PENDING, QUEUED, PROCESSED, FAILED)


class Delivery(Base):
    """One webhook request, stored raw before anything else happens to it."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_deliveries_source_delivery"),
        Index("ix_deliveries_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # "github" | "jira"
    delivery_id: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    source_key: Mapped[str | None] = mapped_column(String(255))  # owner/repo or Jira project key
    team: Mapped[str | None] = mapped_column(String(128))
    # The source keys the delivery's signature verified, which are the only sources whose items
    # it may change (0006): its own source, or for Jira's site-wide sprint/version events the
    # projects using the secret that signed it. NULL on rows stored before 0006.
    verified_sources: Mapped[list | None] = mapped_column(JSON)
    headers: Mapped[dict] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times handed to the queue
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SyncState(Base):
    """Where the last good sync of a source ended, for reconciliation and resumable backfill."""

    __tablename__ = "sync_state"
    __table_args__ = (UniqueConstraint("source", "key", name="uq_sync_state_source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor: Mapped[dict | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
