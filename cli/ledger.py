"""`trackrecord exclude` and `trackrecord exclusions`: a lead's audited exclusions."""

from __future__ import annotations

import getpass
import sys

import click

from cli.common import fail, load_settings, open_database
from ledger import exclusions


def _sessions():
    return open_database(load_settings())


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
    settings = load_settings()
    if team is not None and settings.config.team(team) is None:
        # An unknown team is a typo to report, not a team without exclusions.
        teams = [t.name for c in settings.config.clients for t in c.teams]
        fail(f"no team {team!r} in the configuration (teams: {', '.join(teams) or 'none'})", 2)
    Session = open_database(settings)
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
