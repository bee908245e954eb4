"""Monthly client reports (issue 10): what was built and what was sent, the exactly-once record.

`report_files` holds one stored rendering per (client, month, format). The JSON rendering is
stored first and the others are rendered from it, so the four formats of a month say the same
thing even when they are built at different times; the first stored copy wins a race (insert,
ignore the conflict, read back the winner).

`report_sends` holds one row per (client, month, channel, resend). The scheduled delivery is
resend 0, so the unique key keeps it to one row however many schedulers or workers race; a
deliberate re-send (`trackrecord report --send`) takes the next number. A job sends only after
moving its row from `pending` to `claimed`, and a claim older than the lease (the worker died)
may be taken again; before sending again the job looks for what the earlier attempt left
(the GitHub issue's marker), README "Monthly reports: schedule and channels".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger import claims
from ledger.rows import insert_ignore
from trackrecord.models import Base, utcnow

# A claim older than this is a dead worker's: sending takes seconds, a PDF build a minute.
LEASE = timedelta(minutes=10)


class SendStatus:
    PENDING = "pending"  # recorded, not yet claimed (or handed back for a retry at not_before)
    CLAIMED = "claimed"  # a job is sending it; the outcome may be unknown
    SENT = "sent"  # delivered; `external_id` names the issue number or the Message-ID
    FAILED = "failed"  # stopped: a verdict (403 without a limit, 404, recipient refused) or
    # retries spent; `error` says why
    ALL = (PENDING, CLAIMED, SENT, FAILED)


class ReportFile(Base):
    __tablename__ = "report_files"
    __table_args__ = (
        UniqueConstraint("client", "month", "format", name="uq_report_files_client_month_format"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(128))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    format: Mapped[str] = mapped_column(String(8))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReportSend(Base):
    __tablename__ = "report_sends"
    __table_args__ = (
        UniqueConstraint(
            "client", "month", "channel", "resend", name="uq_report_sends_client_month_channel"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(128))
    month: Mapped[str] = mapped_column(String(7))
    channel: Mapped[str] = mapped_column(String(16))  # "github" | "email"
    resend: Mapped[int] = mapped_column(Integer, default=0)  # 0: the scheduled delivery
    target: Mapped[str] = mapped_column(Text)  # "owner/name", or the recipients
    status: Mapped[str] = mapped_column(String(16), default=SendStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    external_id: Mapped[str | None] = mapped_column(String(300))
    error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- built reports -----------------------------------------------------------------------------


def stored(session: Session, client: str, month: str, fmt: str) -> ReportFile | None:
    return session.scalar(
        select(ReportFile).where(
            ReportFile.client == client, ReportFile.month == month, ReportFile.format == fmt
        )
    )


def store(session: Session, client: str, month: str, fmt: str, content: bytes) -> ReportFile:
    """Keep `content` unless a copy is stored already; the stored copy either way. Part of the
    caller's transaction."""
    row = {
        "client": client,
        "month": month,
        "format": fmt,
        "content": content,
        "built_at": utcnow(),
    }
    insert_ignore(session, ReportFile, [row], ["client", "month", "format"])
    return stored(session, client, month, fmt)


def formats_of(session: Session, client: str, month: str) -> set[str]:
    return set(
        session.scalars(
            select(ReportFile.format).where(ReportFile.client == client, ReportFile.month == month)
        )
    )


# --- sends -------------------------------------------------------------------------------------


def record_sends(
    session: Session, client: str, month: str, targets: dict[str, str], *, resend: int = 0
) -> list[int]:
    """A pending row per channel in `targets` ({channel: target}) unless one exists under the
    same key; the ids of this (client, month, resend)'s rows still pending."""
    if not targets:
        return []
    rows = [
        {
            "client": client,
            "month": month,
            "channel": channel,
            "resend": resend,
            "target": target,
            "status": SendStatus.PENDING,
            "attempts": 0,
            "created_at": utcnow(),
        }
        for channel, target in sorted(targets.items())
    ]
    insert_ignore(session, ReportSend, rows, ["client", "month", "channel", "resend"])
    return list(
        session.scalars(
            select(ReportSend.id).where(
                ReportSend.client == client,
                ReportSend.month == month,
                ReportSend.resend == resend,
                ReportSend.channel.in_(sorted(targets)),
                ReportSend.status == SendStatus.PENDING,
            )
        )
    )


def channels_recorded(session: Session, client: str, month: str) -> set[str]:
    """Channels the scheduled delivery (resend 0) of the month has a row for, in any status."""
    return set(
        session.scalars(
            select(ReportSend.channel).where(
                ReportSend.client == client, ReportSend.month == month, ReportSend.resend == 0
            )
        )
    )


def next_resend(session: Session, client: str, month: str) -> int:
    top = session.scalar(
        select(func.max(ReportSend.resend)).where(
            ReportSend.client == client, ReportSend.month == month
        )
    )
    return (top or 0) + 1


def claimable(session: Session, now: datetime) -> list[int]:
    """Rows a job may take now: pending and due, or claimed by a worker that died."""
    return list(
        session.scalars(select(ReportSend.id).where(claims.claimable(ReportSend, now, LEASE)))
    )


def claim(session: Session, send_id: int, now: datetime) -> bool:
    """pending (due) or stale claimed -> claimed (`ledger.claims`); False when another job has
    it or it is done."""
    return claims.claim(session, ReportSend, send_id, now, LEASE)


def settle(session: Session, send_id: int, status: str, now: datetime, **values) -> bool:
    """From `claimed` to `status` (sent, failed, or pending with a not_before)."""
    if status == SendStatus.SENT:
        values["sent_at"] = now
    if values.get("error"):
        values["error"] = values["error"][:2000]
    return bool(
        session.execute(
            update(ReportSend)
            .where(ReportSend.id == send_id, ReportSend.status == SendStatus.CLAIMED)
            .values(status=status, **values)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


# --- listing -----------------------------------------------------------------------------------


def listing(session: Session, client: str | None = None) -> list[dict]:
    """Every (client, month) with a stored report or a send, newest month first: formats with
    their build time, and every send with its status."""
    months: dict[tuple[str, str], dict] = {}

    def entry(c: str, m: str) -> dict:
        return months.setdefault((c, m), {"client": c, "month": m, "formats": {}, "sends": []})

    files = select(ReportFile.client, ReportFile.month, ReportFile.format, ReportFile.built_at)
    sends = select(ReportSend).order_by(ReportSend.channel, ReportSend.resend)
    if client is not None:
        files = files.where(ReportFile.client == client)
        sends = sends.where(ReportSend.client == client)
    for c, m, fmt, built_at in session.execute(files):
        entry(c, m)["formats"][fmt] = built_at
    for s in session.scalars(sends):
        entry(s.client, s.month)["sends"].append(s)
    return [months[k] for k in sorted(months, key=lambda k: (k[1], k[0]), reverse=True)]
