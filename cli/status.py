"""`trackrecord status`: what an operator checks first. Queue depths, pending and failed
deliveries and jobs, workers alive, the last reconcile and report run.

Exit 0 when the database and Redis both answer, whatever they hold; otherwise 1, with one
plain line naming the part that did not answer (never a traceback). `--json` for scripts.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from cli.common import load_settings
from trackrecord.db import session_factory
from trackrecord.queue import redis_from_url
from workers import observe


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "never"


def _database(settings) -> tuple[dict | None, str | None]:
    try:
        with session_factory(settings.database_url)() as session:
            db = observe.read_database(session, history=True)
    except SQLAlchemyError as exc:
        return None, type(getattr(exc, "orig", None) or exc).__name__
    return {
        "deliveries": db.deliveries,
        "oldest_pending_received_at": _when(db.oldest_waiting) if db.oldest_waiting else None,
        "comments": db.comments,
        "report_sends": db.report_sends,
        "last_reconcile": _when(db.last_reconcile),
        "last_report": _when(db.last_report),
    }, None


def _redis(settings) -> tuple[dict | None, str | None]:
    redis = redis_from_url(settings.redis_url, fast=True)
    try:
        rd = observe.read_redis(redis, (settings.queue_name,))
    except (RedisError, OSError) as exc:
        return None, type(exc).__name__
    finally:
        redis.close()
    return {
        "queues": rd.queues,
        "workers": {"alive": rd.workers_alive, "stale": rd.workers_stale},
    }, None


def _lines(found: dict) -> list[str]:
    db, rd = found["database"], found["redis"]
    d = db["deliveries"]
    lines = [
        f"deliveries: {d['pending']} pending, {d['queued']} queued, {d['failed']} failed, "
        f"{d['processed']} processed",
        f"oldest unprocessed delivery received: {db['oldest_pending_received_at'] or 'none'}",
    ]
    for name, states in rd["queues"].items():
        lines.append(
            f"queue {name}: {states['queued']} queued, {states['started']} started, "
            f"{states['failed']} failed, {states['scheduled']} scheduled"
        )
    workers = rd["workers"]
    lines.append(f"workers: {workers['alive']} alive, {workers['stale']} not answering")
    comments = db["comments"]
    lines.append(
        f"comments: {comments.get('posted', 0)} posted, {comments.get('pending', 0)} pending, "
        f"{comments.get('failed', 0)} failed"
    )
    lines.append(f"last reconcile: {db['last_reconcile']}")
    lines.append(f"last report run: {db['last_report']}")
    return lines


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def status(as_json: bool) -> None:
    """Queues, pending and failed deliveries and jobs, workers, last reconcile and report."""
    settings = load_settings()
    db, db_error = _database(settings)
    rd, rd_error = _redis(settings)
    down = [f"{part} ({err})" for part, err in (("database", db_error), ("Redis", rd_error)) if err]
    found = {"database": db, "redis": rd, "ok": not down}
    if down:
        found["unreachable"] = {k: v for k, v in (("database", db_error), ("redis", rd_error)) if v}
    if as_json:
        click.echo(json.dumps(found, indent=2, sort_keys=True))
    elif not down:
        click.echo("\n".join(_lines(found)))
    if down:
        click.echo(f"trackrecord: did not answer: {' and '.join(down)}", err=True)
        sys.exit(1)
