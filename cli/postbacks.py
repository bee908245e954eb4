"""`trackrecord postbacks [--failed] [--limit N] [--retry ID]`: the comments posted on settled
items (issue 9), newest first, and a way to try a failed one again."""

from __future__ import annotations

import click
from sqlalchemy import select

from cli.common import load_settings
from ledger.codec import utc
from ledger.postbacks import Postback, PostbackStatus


@click.command()
@click.option("--failed", is_flag=True, help="Only posts that failed (item gone, retries spent).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--retry", "retry_id", type=int, help="Put this failed post back on the queue.")
def postbacks(failed: bool, limit: int, retry_id: int | None) -> None:
    """List recent comments on settled items, or retry a failed one."""
    load_settings()
    from workers import context
    from workers.postback import retry

    if retry_id is not None:
        if not retry(retry_id):
            raise click.ClickException(f"postback {retry_id} is not a failed post")
        click.echo(f"postback {retry_id} queued again")
        return
    stmt = select(Postback).order_by(Postback.id.desc()).limit(limit)
    if failed:
        stmt = stmt.where(Postback.status == PostbackStatus.FAILED)
    with context.sessions()() as session:
        rows = session.scalars(stmt).all()
        if not rows:
            click.echo("no failed posts" if failed else "no posts yet")
        for r in rows:
            when = utc(r.posted_at or r.claimed_at or r.created_at)
            extra = f"comment {r.comment_id}" if r.comment_id else (r.error or "")
            click.echo(
                f"{r.id:>6}  {r.status:<8} {when:%Y-%m-%d %H:%M}Z  {r.item_key}  {r.kind}  "
                f"attempts {r.attempts}  {extra}".rstrip()
            )
