"""Monthly reports on the web (issue 10), behind the client's token (webhook_app.auth): the list
of a client's reports, and a stored report in any of its formats.

    GET /api/v1/clients/<client>/reports           what was built and sent, newest month first
    GET /reports/<client>/<YYYY-MM>.<html|pdf|md|json>

A report is served as stored; a finished month with none stored yet is built and stored on its
first request (the same function the scheduled job uses), so later requests and the emailed
copy say the same. Checks run in order: token (401), client (404, also for another client's:
no existence leaks), then the name: a month not over in the client's timezone, or a format
other than the four, is a 404 like any report that does not exist.

Only the last BUILD_ON_REQUEST_MONTHS finished months are built on request: otherwise any token
holder could have a report built and stored for every month back to 1900 (a row per month and
format, 1.5 s of rendering each). Stored reports of older months are served as ever, and
`trackrecord report CLIENT --month M` builds any month.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, jsonify

from ledger import report_rows
from ledger.codec import utc
from reports.render import CONTENT_TYPES, FORMATS
from webhook_app.auth import client_for, principal
from webhook_app.errors import Rejected
from webhook_app.pages_auth import page_principal
from webhook_app.services import services
from workers.report_jobs import ensure_built
from workers.report_schedule import finished

bp = Blueprint("reports", __name__)

NAME_RE = re.compile(r"([0-9]{4}-[0-9]{2})\.([a-z]{2,4})")
BUILD_ON_REQUEST_MONTHS = 24


def months_ago(month: str, tz: str, now: datetime) -> int:
    """How many months before the current month in `tz` the 'YYYY-MM' `month` is."""
    local = now.astimezone(ZoneInfo(tz))
    return local.year * 12 + local.month - (int(month[:4]) * 12 + int(month[5:7]))


def _when(value: datetime | None) -> str | None:
    return utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


def _send(s) -> dict:
    return {
        "channel": s.channel,
        "target": s.target,
        "resend": s.resend,
        "status": s.status,
        "attempts": s.attempts,
        "external_id": s.external_id,
        "error": s.error,
        "sent_at": _when(s.sent_at),
        "updated_at": _when(s.sent_at or s.claimed_at or s.created_at),
    }


@bp.get("/api/v1/clients/<client>/reports")
def report_list(client: str):
    model = client_for(principal(), client)
    with services().sessions() as session:
        entries = report_rows.listing(session, model.name)
        body = [
            {
                "month": e["month"],
                "formats": {
                    fmt: {"url": f"/reports/{model.name}/{e['month']}.{fmt}", "built_at": _when(at)}
                    for fmt, at in sorted(e["formats"].items())
                },
                "sends": [_send(s) for s in e["sends"]],
            }
            for e in entries
        ]
    return jsonify({"client": model.name, "reports": body})


@bp.get("/reports/<client>/<name>")
def report_file(client: str, name: str):
    # Linked from the client page: a signed-in browser opens it with its session cookie.
    model = client_for(page_principal(), client)
    found = NAME_RE.fullmatch(name)
    missing = Rejected(404, "not_found", f"no report {name!r} for client {client!r}")
    if not found or found[2] not in FORMATS:
        raise missing
    month, fmt = found[1], found[2]
    now = datetime.now(UTC)
    try:
        if not finished(month, model.timezone, now):
            raise Rejected(404, "not_found", f"no report for {month}: the month is not over")
    except ValueError:  # 2026-13, or a year out of range
        raise missing from None
    with services().sessions() as session, session.begin():
        too_old = months_ago(month, model.timezone, now) > BUILD_ON_REQUEST_MONTHS
        if too_old and not report_rows.formats_of(session, model.name, month):
            raise Rejected(
                404,
                "not_found",
                f"no report for {month}: only the last {BUILD_ON_REQUEST_MONTHS} months are built"
                " on request; `trackrecord report` builds older ones",
            )
        try:
            row = ensure_built(session, services().settings.config, model.name, month, fmt, now)
        except ValueError:
            raise missing from None
        content = row.content
    headers = {}
    if fmt == "pdf":
        headers["Content-Disposition"] = (
            f'attachment; filename="track-record-{model.name}-{month}.pdf"'
        )
    return Response(content, status=200, content_type=CONTENT_TYPES[fmt], headers=headers)
