"""`trackrecord reports [--client C] [--month YYYY-MM] [--json]`: the monthly reports built and
sent (issue 10), newest month first: the formats stored, and per channel its status, when, the
issue number or Message-ID, and the error of the last failed attempt."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from cli.common import fail, load_settings, open_database
from ledger import report_rows
from ledger.codec import utc


def _when(value) -> str:
    return f"{utc(value):%Y-%m-%d %H:%M}Z" if value is not None else "-"


def _send_line(s) -> str:
    what = f"{s.channel}" + (f" (re-send {s.resend})" if s.resend else "")
    when = _when(s.sent_at or s.claimed_at or s.created_at)
    extra = s.external_id or ""
    if s.error and s.status != report_rows.SendStatus.SENT:
        extra = f"{extra} error: {s.error}".strip()
    line = f"    {what:<22} {s.status:<8} {when}  attempts {s.attempts}  -> {s.target}  {extra}"
    return line.rstrip()


def _as_json(e: dict) -> dict:
    return {
        "client": e["client"],
        "month": e["month"],
        "formats": {f: utc(at).isoformat() for f, at in sorted(e["formats"].items())},
        "sends": [
            {"channel": s.channel, "resend": s.resend, "target": s.target, "status": s.status,
             "attempts": s.attempts, "external_id": s.external_id, "error": s.error,
             "sent_at": utc(s.sent_at).isoformat() if s.sent_at else None}
            for s in e["sends"]
        ],
    }  # fmt: skip


@click.command()
@click.option("--client", "client_name", help="Only this client's reports.")
@click.option("--month", help="Only this month (YYYY-MM).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def reports(client_name: str | None, month: str | None, as_json: bool) -> None:
    """List the monthly reports built and sent, per client and month."""
    settings = load_settings()
    if client_name is not None and settings.config.client(client_name) is None:
        raise click.ClickException(f"no client {client_name!r} in the configuration")
    with open_database(settings)() as session:
        entries = [
            e
            for e in report_rows.listing(session, client_name)
            if month is None or e["month"] == month
        ]
        if as_json:
            click.echo(json.dumps([_as_json(e) for e in entries], indent=2))
            return
        if not entries:
            click.echo("no reports built yet")
        for e in entries:
            built = min(e["formats"].values(), default=None)
            formats = ", ".join(sorted(e["formats"])) or "not built"
            click.echo(f"{e['client']}  {e['month']}  {formats}  built {_when(built)}")
            if not e["sends"]:
                click.echo("    no channel configured, or not sent yet")
            for s in e["sends"]:
                click.echo(_send_line(s))


def send_now(settings, client: str, month: str) -> None:
    """`trackrecord report CLIENT --month M --send`: record a deliberate re-send per channel and
    send it now; a channel that fails is left to the scheduler's retries, and the exit is 1."""
    from workers.report_jobs import resend, send_monthly_report

    open_database(settings)
    try:
        ids = resend(client, month)
    except ValueError as exc:
        fail(str(exc))
    outcomes = {sid: send_monthly_report(sid) for sid in ids}
    with open_database(settings)() as session:
        rows = session.scalars(
            select(report_rows.ReportSend).where(report_rows.ReportSend.id.in_(ids))
        ).all()
        for s in rows:
            click.echo(_send_line(s).strip())
    if any(o != report_rows.SendStatus.SENT for o in outcomes.values()):
        fail("not every channel was sent; `trackrecord reports` shows the error and retries go on")
