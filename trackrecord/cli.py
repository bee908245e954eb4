"""The `trackrecord` command."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from urllib.parse import urlparse

import click

from trackrecord.config import ConfigError, Settings
from trackrecord.logs import configure


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        # A bad file stops the process at start with the file, key and problem, not a traceback.
        click.echo(f"trackrecord: configuration error:\n{exc}", err=True)
        sys.exit(2)


@click.group()
def main() -> None:
    """trackrecord: a team's GitHub and Jira work, turned into a track record of kept promises."""
    configure()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn processes")
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn.")
def serve(host: str, port: int, workers: int, dev: bool) -> None:
    """Run the web app (webhooks, health, API) under gunicorn."""
    settings = _settings()
    from webhook_app import create_app

    if dev:
        create_app(settings).run(host=host, port=port)
        return
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")
            # Webhook senders wait at most 10 s (GitHub); a request stuck longer is a bug.
            self.cfg.set("timeout", 30)

        def load(self):
            return create_app(settings)

    _App().run()


@main.command()
@click.option("--burst", is_flag=True, help="Drain the queue, then exit.")
def worker(burst: bool) -> None:
    """Run an RQ worker (relays pending deliveries at start and periodically)."""
    settings = _settings()
    from workers.runner import run_worker

    run_worker(settings, burst=burst)


@main.command()
def scheduler() -> None:
    """Run the cron scheduler (relay every minute, reconcile hourly, and later reports)."""
    settings = _settings()
    from workers.runner import run_scheduler

    run_scheduler(settings)


@main.command()
@click.option("--min-age", default=0.0, show_default=True, help="Skip deliveries younger (s).")
def relay(min_age: float) -> None:
    """Enqueue stored deliveries that Redis does not hold (pending, or lost by Redis)."""
    _settings()
    from workers.relay import relay_pending

    click.echo(json.dumps(relay_pending(min_age_seconds=min_age)))


@main.command()
@click.argument("source", required=False)
def reconcile(source: str | None) -> None:
    """Heal what was lost: ask GitHub to redeliver failed webhook deliveries, then re-read what
    changed since the last good backfill. SOURCE is OWNER/REPO or a Jira key (default: all)."""
    settings = _settings()
    from workers.reconcile import reconcile_all, reconcile_source

    if source is None:
        result = reconcile_all()
    else:
        kind = "github" if "/" in source else "jira"
        if settings.config.source(kind, source) is None:
            raise click.ClickException(f"{source} is not a source in the configuration")
        result = reconcile_source(kind, source)
    click.echo(json.dumps(result, default=str))


@main.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from trackrecord import migrate

    migrate.upgrade(_settings().database_url, revision)


@db.command("current")
def db_current() -> None:
    from trackrecord import migrate

    migrate.current(_settings().database_url)


@main.command("check-config")
def check_config() -> None:
    """Validate TRACKRECORD_CONFIG and list the sources it declares."""
    settings = _settings()
    for source in settings.config.sources():
        click.echo(f"{source.kind:6} {source.key:40} team={source.team} client={source.client}")
    click.echo(f"ok: {settings.config.path or '(no file: every delivery will be ignored)'}")


def _redis_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Everything on one machine: web + worker + scheduler (+ a local Redis when none answers)."""
    from honcho.manager import Manager

    settings = _settings()
    from trackrecord import migrate

    migrate.upgrade(settings.database_url)
    exe = [sys.executable, "-m", "trackrecord"]
    manager = Manager()
    env = dict(os.environ)
    parsed = urlparse(settings.redis_url)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if local and not _redis_reachable(settings.redis_url):
        server = shutil.which("redis-server")
        if server is None:
            raise click.ClickException("no Redis answers and redis-server is not installed")
        os.makedirs("var/redis", exist_ok=True)
        # appendonly: a local Redis that keeps its queue across restarts (relay heals it anyway).
        manager.add_process(
            "redis",
            f"{server} --port {parsed.port or 6379} --bind 127.0.0.1 --dir var/redis "
            "--appendonly yes --save ''",
            env=env,
        )
    q = " ".join(exe)
    manager.add_process("web", f"{q} serve --host {host} --port {port}", env=env)
    manager.add_process("worker", f"{q} worker", env=env)
    manager.add_process("scheduler", f"{q} scheduler", env=env)
    manager.loop()
    sys.exit(manager.returncode)


from trackrecord.cli_ledger import exclude, list_exclusions  # noqa: E402

main.add_command(exclude)
main.add_command(list_exclusions)

from trackrecord.cli_backfill import backfill  # noqa: E402

main.add_command(backfill)

from trackrecord.cli_record import record  # noqa: E402

main.add_command(record)

if __name__ == "__main__":
    main()
