"""`trackrecord backfill github OWNER/REPO` and `trackrecord backfill jira PROJECT`.

A newly installed team starts with its history. Each run continues where the previous one
stopped (the cursor is in `sync_state`); `--restart` reads from `--since` (or the beginning)
again. Prints one JSON summary line on stdout; progress goes to stderr on a terminal.
"""

from __future__ import annotations

import json
import sys
from datetime import date

import click

from cli.common import api_failure, fail, load_settings, require_schema


def _since(ctx, param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-05-01") from None


_since_option = click.option(
    "--since",
    callback=_since,
    metavar="YYYY-MM-DD",
    help="Only items updated on or after this day (default: all, or where the last run stopped).",
)
_restart_option = click.option("--restart", is_flag=True, help="Ignore where the last run stopped.")

# Each page is one transaction; smaller pages lose less to an interruption.
_page_option = click.option(
    "--page-size",
    type=click.IntRange(1, 100),
    default=None,
    help="Items per request and per commit (default: 100 GitHub, 50 Jira).",
)


def _run(kind: str, key: str, backfill, since: date | None, restart: bool, size: int | None):
    from trackrecord.db import session_factory

    settings = load_settings()
    if settings.config.source(kind, key) is None:
        listed = ", ".join(s.key for s in settings.config.sources(kind)) or "none"
        raise click.ClickException(
            f"{kind} source {key!r} is not in the configuration "
            f"({settings.config.path or 'no TRACKRECORD_CONFIG'}; listed: {listed})"
        )
    require_schema(settings.database_url)
    try:
        summary = backfill(
            session_factory(settings.database_url),
            settings.config,
            key,
            since=since,
            progress=sys.stderr.isatty(),
            restart=restart,
            **({"page_size": size} if size else {}),
        )
    except click.ClickException:
        raise
    except Exception as exc:
        reason = api_failure(exc)
        if reason is None:
            raise  # a bug, with its traceback
        # Pages written so far are committed with their cursor: running again continues.
        fail(f"backfill stopped: {reason} (what was read is saved; run again to continue)")
    click.echo(json.dumps(summary, default=str))


@click.group()
def backfill() -> None:
    """Read a source's history into the ledger (resumable)."""


@backfill.command("github")
@click.argument("repo")
@_since_option
@_restart_option
@_page_option
def backfill_github_cmd(repo: str, since: date | None, restart: bool, page_size: int | None):
    """Milestones, issues and pull requests of OWNER/REPO, with their timelines."""
    from connectors.github.backfill import backfill_github

    _run("github", repo, backfill_github, since, restart, page_size)


@backfill.command("jira")
@click.argument("project")
@_since_option
@_restart_option
@_page_option
def backfill_jira_cmd(project: str, since: date | None, restart: bool, page_size: int | None):
    """Issues of a Jira PROJECT, with their changelogs."""
    from connectors.jira.backfill import backfill_jira

    _run("jira", project, backfill_jira, since, restart, page_size)
