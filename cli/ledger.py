"""`trackrecord exclude` and `trackrecord exclusions`: a lead's audited exclusions."""

from __future__ import annotations

import getpass
import sys

import click

from cli.common import load_settings
from ledger import exclusions
from trackrecord.db import session_factory


def _sessions():

    return session_factory(load_settings().database_url)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise click.UsageError("cannot tell who you are: pass --by NAME") from None


@click.command()
@click.argument("source_id")
@click.option("--reason", help="Why (shown in reports). Required to exclude.")
@click.option("--by", "by", help="Who decides (default: the login name).")
@click.option("--undo", is_flag=True, help="Undo the active exclusion (the record is kept).")
def exclude(source_id: str, reason: str | None, by: str | None, undo: bool) -> None:
    """Exclude a commitment from the figures, or undo that: SOURCE_ID is github:owner/repo#12,
    owner/repo#12, jira:PLAT-7 or PLAT-7."""
    who = _who(by)
    if not undo and not reason:
        raise click.UsageError("--reason is required: every exclusion is shown with its reason")
    Session = _sessions()
    try:
        with Session() as session, session.begin():
            if undo:
                rows = exclusions.undo(session, source_id, who, reason)
                key = exclusions.find_item(session, source_id).key
                click.echo(f"undone: {key} (excluded by {rows[0].excluded_by}), undone by {who}")
            else:
                row = exclusions.exclude(session, source_id, reason, who)
                key = exclusions.find_item(session, source_id).key
                click.echo(f"excluded: {key} by {row.excluded_by}: {row.reason}")
    except exclusions.ExclusionError as exc:
        click.echo(f"trackrecord: {exc}", err=True)
        sys.exit(1)


@click.command("exclusions")
@click.option("--team", help="Only this team's items.")
def list_exclusions(team: str | None) -> None:
    """List every exclusion ever made, undone ones included, oldest first."""
    Session = _sessions()
    with Session() as session:
        rows = exclusions.listing(session, team)
    if not rows:
        click.echo("no exclusions")
        return
    for row, item in rows:
        state = (
            "active"
            if row.undone_at is None
            else f"undone by {row.undone_by} {row.undone_at:%Y-%m-%d}"
        )
        click.echo(
            f"{item.key}\tteam={item.team}\t{row.excluded_at:%Y-%m-%d %H:%M}\t"
            f"by {row.excluded_by}\t{state}\t{row.reason}"
        )
