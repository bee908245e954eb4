"""When a client's monthly report is due, and `schedule_reports`, the job the scheduler runs every
15 minutes to build and deliver what is due and not yet done (issue 10).

A report is due on the 1st of each month at the client's `report.hour`, in the client's
timezone, for the month before. The job looks at the latest due month of every client, not at
the clock's minute: a run missed while the service was down (or while the scheduler was) is
made up by the first run after it comes back, and a run that finds the month built and a send
row for every channel does nothing. Only the latest due month is made up; an older month missed
entirely is sent on purpose with `trackrecord report CLIENT --month M --send`.

Exactly once comes from the database, not from this job: building stores under the unique
(client, month, format) key and sending claims rows keyed by (client, month, channel, resend),
so two schedulers racing enqueue the same work twice and it is done once.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ledger.reading import end_of_day, month_end
from ledger.report_rows import channels_recorded, claimable, formats_of
from reports.content import parse_month, shift
from reports.render import FORMATS
from trackrecord.logs import get_logger
from trackrecord.queue import get_queue, live_jobs, redis_from_url
from workers import context

log = get_logger("workers.report_schedule")

# How often the scheduler runs `schedule_reports` (workers/runner.py): a report goes out at
# most this long after its hour, and a failed send is retried at this pace at the latest.
SCHEDULE_CRON = "*/15 * * * *"


def due(hour: int, tz: str, now: datetime) -> tuple[str, datetime]:
    """(the month whose report is due at `now`, the instant it became due): the latest 1st of a
    month at `hour` in `tz` not after `now`, and the month before it."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    first = local.date().replace(day=1)
    due_at = datetime(first.year, first.month, 1, hour, tzinfo=zone)
    if local < due_at:
        first = shift(first, -1)
        due_at = datetime(first.year, first.month, 1, hour, tzinfo=zone)
    month = shift(first, -1)
    return f"{month.year}-{month.month:02d}", due_at.astimezone(UTC)


def finished(month: str, tz: str, now: datetime) -> bool:
    """Whether `month` ('YYYY-MM', ValueError otherwise) is over in `tz` at `now`: the same test
    `reports.content.build_report` makes."""
    return now >= end_of_day(month_end(parse_month(month)), ZoneInfo(tz))


def wanted_channels(client) -> dict[str, str]:
    """{channel: target} of the channels a client's `report` table configures."""
    out = {}
    if client.report.github_issue_repo:
        out["github"] = client.report.github_issue_repo
    if client.report.email_to:
        out["email"] = ", ".join(client.report.email_to)
    return out


def job_key(*parts: str) -> str:
    # RQ job ids take letters, digits, '-' and '_'; client names may hold '.', so a short hash
    # of the exact parts keeps "a.b" and "a_b" apart.
    plain = re.sub(r"[^A-Za-z0-9_-]", "_", "-".join(parts))
    return f"{plain}-{hashlib.sha256('/'.join(parts).encode()).hexdigest()[:8]}"


def pending_work(session, config, now: datetime) -> list[tuple[str, str]]:
    """(client, month) pairs whose due report is not yet fully built, or lacks a send row for
    a configured channel."""
    found = []
    for client in config.clients:
        month, _ = due(client.report.hour, client.timezone, now)
        built = formats_of(session, client.name, month) >= set(FORMATS)
        recorded = channels_recorded(session, client.name, month)
        if not built or not set(wanted_channels(client)) <= recorded:
            found.append((client.name, month))
    return found


def schedule_reports(now: datetime | None = None) -> dict:
    """The scheduler's job: enqueue a build for each due (client, month) not yet done, and put
    back on the queue every send that is due again (a retry's time has come) or whose worker
    died. Returns what it enqueued, for the log and the tests."""
    from workers.report_jobs import build_monthly_report, enqueue_sends

    now = now or datetime.now(UTC)
    settings = context.settings()
    with context.sessions()() as session:
        work = pending_work(session, settings.config, now)
        sends = claimable(session, now)
    redis = redis_from_url(settings.redis_url)
    queue = get_queue(redis, settings.queue_name)
    for client, month in work:
        queue.enqueue(
            build_monthly_report,
            client,
            month,
            now.isoformat(),
            job_id=job_key("report-build", client, month),
            job_timeout=600,
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            description=f"build_monthly_report({client!r}, {month!r})",
        )
        log.info("report.build_enqueued", client=client, month=month)
    live = live_jobs(redis, [send_job_id(i) for i in sends])
    relayed = [i for i in sends if send_job_id(i) not in live]
    enqueue_sends(relayed)
    return {"builds": work, "sends": relayed}


def send_job_id(send_id: int) -> str:
    return f"report-send-{send_id}"


def backoff(attempts: int) -> timedelta:
    """How long a failed send waits before its next attempt: 2 min, 10 min, 30 min, 2 h, 6 h."""
    steps = (2, 10, 30, 120, 360)
    return timedelta(minutes=steps[min(attempts, len(steps)) - 1])
