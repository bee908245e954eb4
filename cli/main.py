"""The `trackrecord` command group: every command registered in one table."""

from __future__ import annotations

import click

from cli import (
    backfill,
    demo,
    ledger,
    postbacks,
    processes,
    record,
    report,
    reports,
    status,
    token,
)
from cli.common import PlainErrors
from trackrecord.logs import configure


@click.group(cls=PlainErrors)
def main() -> None:
    """trackrecord: a team's GitHub and Jira work, turned into a track record of kept promises."""
    configure()


for command in (
    processes.serve,
    processes.worker,
    processes.scheduler,
    processes.relay,
    processes.reconcile,
    processes.db,
    processes.check_config,
    processes.up,
    ledger.exclude,
    ledger.list_exclusions,
    backfill.backfill,
    record.record,
    report.report,
    postbacks.postbacks,
    reports.reports,
    status.status,
    token.token,
    demo.demo,
):
    main.add_command(command)

if __name__ == "__main__":
    main()
