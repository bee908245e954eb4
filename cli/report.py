"""`trackrecord report CLIENT [--month YYYY-MM] [--format html|pdf|md|json] [--out PATH]`.

Builds one client's monthly report (reports.content) for a finished month, by default last
month in the client's timezone, and writes it in the chosen format (reports.render) to a file
or to stdout (bytes for a PDF). An unknown client, a malformed month or one not over yet is one
plain line on stderr and a non-zero exit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from cli.common import fail, load_settings, open_database
from reports.content import build_report, last_month
from reports.render import FORMATS, render


@click.command()
@click.argument("client")
@click.option("--month", help="YYYY-MM, a finished month (default: last month, client's time).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
    help="html (self-contained), pdf, md (a GitHub issue's text) or json (every figure).",
)  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
@click.option("--send", is_flag=True, help="Re-send on purpose through every configured channel.")
def report(client: str, month: str | None, fmt: str, out: Path | None, send: bool) -> None:
    """Write CLIENT's monthly report for --month (default: last month)."""
    settings = load_settings()
    model = settings.config.client(client)
    if model is None:
        fail(f"no client {client!r} in the configuration")
    now = datetime.now(UTC)
    month = month or last_month(now, model.timezone)
    if send:  # cli/reports.py: a new delivery under the next resend number
        from cli.reports import send_now

        send_now(settings, client, month)
        if out is None:
            return
    with open_database(settings)() as session:
        try:
            built = build_report(session.connection(), settings.config, client, month, now=now)
        except ValueError as exc:
            fail(str(exc))
    data = render(built, fmt)
    if out is None:
        click.echo(data, nl=False)  # bytes go to the binary stdout (a PDF stays intact)
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    click.echo(f"wrote {out} ({fmt}, {client}, {month})", err=True)
