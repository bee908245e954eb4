"""Monthly reports (issue 10): build and store a month's report, deliver it once per channel.

`build_monthly_report(client, month)` stores all four formats and records a send row per
configured channel, then enqueues the sends. `send_monthly_report(send_id)` claims its row
(`pending` -> `claimed`) before it sends, so a duplicate job or a second worker finds nothing
to claim; a fault hands the row back with the time of its next attempt, which the scheduler's
`schedule_reports` (workers/report_schedule.py) or an RQ scheduled job picks up. `resend` is
the deliberate re-send of `trackrecord report --send`: new rows under the next resend number.
README, "Monthly reports: schedule and channels".
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from connectors import mail
from connectors.comments import Gone, RateLimited, Transient
from connectors.github_api import GithubNotConfigured
from connectors.report_issue import issue_body, marker, post_report
from ledger import report_rows as rows
from ledger.report_rows import ReportSend, SendStatus
from reports.content import build_report
from reports.render import FORMATS, render
from trackrecord.logs import get_logger
from trackrecord.queue import get_queue, redis_from_url
from workers import context
from workers.comment_text import PUBLIC_URL_ENV
from workers.report_schedule import backoff, send_job_id, wanted_channels

log = get_logger("workers.report_jobs")

# After this many attempts a send stops as failed (about 9 hours of retries, README).
MAX_ATTEMPTS = 6


# --- building ----------------------------------------------------------------------------------


def ensure_built(session, config, client: str, month: str, fmt: str, now: datetime):
    """The stored `fmt` of the month, built and stored first when missing. Every format is
    rendered from the stored JSON, so all four say the same. ValueError from build_report
    (unknown client, unfinished month) and render (unknown format) goes to the caller."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    found = rows.stored(session, client, month, fmt)
    if found is not None:
        return found
    source = rows.stored(session, client, month, "json")
    if source is None:
        report = build_report(session.connection(), config, client, month, now=now)
        source = rows.store(session, client, month, "json", render(report, "json"))
        log.info("report.built", client=client, month=month)
    if fmt == "json":
        return source
    return rows.store(session, client, month, fmt, render(json.loads(source.content), fmt))


def build_monthly_report(client: str, month: str, at: str | None = None) -> list[int]:
    """Store the month's four formats, record a send per configured channel (resend 0), enqueue
    the pending ones. Returns their ids."""
    now = datetime.fromisoformat(at) if at else datetime.now(UTC)
    config = context.settings().config
    model = config.client(client)
    if model is None:
        log.warning("report.unknown_client", client=client, month=month)
        return []
    for fmt in FORMATS:  # one transaction each: a PDF failing keeps the JSON built
        with context.sessions()() as session, session.begin():
            ensure_built(session, config, client, month, fmt, now)
    with context.sessions()() as session, session.begin():
        ids = rows.record_sends(session, client, month, wanted_channels(model))
    enqueue_sends(ids)
    return ids


def resend(client: str, month: str, now: datetime | None = None) -> list[int]:
    """A deliberate re-send through every configured channel: new rows under the next resend
    number (so the scheduled delivery's key stays unique), sent now by the caller."""
    now = now or datetime.now(UTC)
    config = context.settings().config
    model = config.client(client)
    if model is None:
        raise ValueError(f"no client {client!r} in the configuration")
    channels = wanted_channels(model)
    if not channels:
        raise ValueError(f"client {client!r} has no report channel (github_issue_repo, email_to)")
    with context.sessions()() as session, session.begin():
        ensure_built(session, config, client, month, "json", now)
        number = rows.next_resend(session, client, month)
        return rows.record_sends(session, client, month, channels, resend=number)


# --- sending -----------------------------------------------------------------------------------


def enqueue_sends(ids: list[int]) -> None:
    """Hand send rows to RQ; on failure (Redis down) the scheduler relays them later."""
    if not ids:
        return
    settings = context.settings()
    try:
        queue = get_queue(redis_from_url(settings.redis_url), settings.queue_name)
        for sid in ids:
            queue.enqueue(send_monthly_report, sid, job_id=send_job_id(sid), job_timeout=300,
                          result_ttl=3600, failure_ttl=7 * 24 * 3600,
                          description=f"send_monthly_report({sid})")  # fmt: skip
    except Exception as exc:
        log.warning("report.enqueue_failed", ids=ids, error=type(exc).__name__)


def send_monthly_report(send_id: int, now: datetime | None = None) -> str:
    """Claim, send through the row's channel, record. Returns what happened."""
    now = now or datetime.now(UTC)
    settings = context.settings()
    Session = context.sessions()
    with Session() as session, session.begin():
        if not rows.claim(session, send_id, now):
            log.info("report.send_skip", send=send_id, outcome="not_claimable")
            return "not_claimable"
        row = session.get(ReportSend, send_id)
        client, month, channel, target = row.client, row.month, row.channel, row.target
        number, attempts = row.resend, row.attempts
    model = settings.config.client(client)
    if model is None:
        return _settle(send_id, SendStatus.FAILED, now, error="client no longer configured")
    try:
        with Session() as session, session.begin():
            md = ensure_built(session, settings.config, client, month, "md", now).content
            pdf = ensure_built(session, settings.config, client, month, "pdf", now).content
        if channel == "github":
            external = _post_issue(model, month, number, target, md.decode())
        else:
            external = _mail(model, month, number, target, md.decode(), pdf)
    except RateLimited as exc:  # nothing was sent: not an attempt
        _settle(send_id, SendStatus.PENDING, now, error=f"rate limited: {exc}",
                not_before=exc.reset, attempts=attempts - 1)  # fmt: skip
        _enqueue_at(send_id, exc.reset)
        return "rate_limited"
    except (Gone, mail.Refused) as exc:
        log.warning("report.send_refused", send=send_id, channel=channel, error=str(exc)[:200])
        return _settle(send_id, SendStatus.FAILED, now, error=f"{type(exc).__name__}: {exc}")
    except (Transient, mail.Transient, mail.MailNotConfigured, GithubNotConfigured,
            ValueError) as exc:  # fmt: skip
        error = f"{type(exc).__name__}: {exc}"
        log.warning("report.send_retry", send=send_id, channel=channel, attempts=attempts,
                    error=error[:200])  # fmt: skip
        if attempts >= MAX_ATTEMPTS:
            return _settle(send_id, SendStatus.FAILED, now, error=f"gave up: {error}")
        at = now + backoff(attempts)
        _settle(send_id, SendStatus.PENDING, now, error=error, not_before=at)
        _enqueue_at(send_id, at)
        return "retry"
    log.info("report.sent", send=send_id, client=client, month=month, channel=channel,
             external=external)  # fmt: skip
    return _settle(send_id, SendStatus.SENT, now, external_id=external, error=None)


def _title(model, month: str) -> str:
    return f"Track record for {month}: {model.name}"


def _link(client: str, month: str, fmt: str) -> str | None:
    public = os.environ.get(PUBLIC_URL_ENV, "").rstrip("/")
    return f"{public}/reports/{client}/{month}.{fmt}" if public else None


def _post_issue(model, month: str, number: int, repo: str, md: str) -> str:
    token = marker(model.name, month, number)
    body = issue_body(md, token, _link(model.name, month, "html"))
    found, created = post_report(repo, _title(model, month), body, token)
    if not created:
        log.info("report.issue_found", client=model.name, month=month, issue=found)
    return found


def _mail(model, month: str, number: int, target: str, md: str, pdf: bytes) -> str:
    smtp = mail.from_env()
    sender = model.report.email_from
    domain = sender.rpartition("@")[2].rstrip(">") or "trackrecord.invalid"
    msg_id = mail.message_id(model.name, month, number, domain)
    msg = mail.build_message(
        sender=sender, to=[a.strip() for a in target.split(",")], subject=_title(model, month),
        text=md, msg_id=msg_id, attachment=pdf, filename=f"track-record-{model.name}-{month}.pdf",
    )  # fmt: skip
    mail.send(smtp, msg)
    return msg_id


def _settle(send_id: int, status: str, now: datetime, **values) -> str:
    with context.sessions()() as session, session.begin():
        rows.settle(session, send_id, status, now, **values)
    return status


def _enqueue_at(send_id: int, at: datetime) -> None:
    settings = context.settings()
    try:
        queue = get_queue(redis_from_url(settings.redis_url), settings.queue_name)
        queue.enqueue_at(at, send_monthly_report, send_id,
                         job_id=f"{send_job_id(send_id)}-at-{int(at.timestamp())}")  # fmt: skip
    except Exception as exc:  # the scheduler relays it when its time comes
        log.warning("report.enqueue_failed", ids=[send_id], error=type(exc).__name__)
