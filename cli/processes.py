"""The long-running processes and their helpers: serve, worker, scheduler, relay, reconcile,
up, and the database and configuration commands."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shlex
import shutil
import socket
import sys
import traceback
from pathlib import Path
from urllib.parse import urlparse

import click

from cli.common import api_failure, fail, load_settings, require_schema

# The access log names the path, never the query string: a client that sends its API token
# as `?token=...` is refused, and its token must not then sit in the log. (Gunicorn's default
# `%(r)s` is the raw request line, query included; `%(f)s`, the referer, may hold one too.)
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'

# The query string of a request target in a log message: `/path?query` -> `/path`.
_QUERY = re.compile(r"(/[^\s?\"']*)\?[^\s\"']*")


# The handlers gunicorn makes for `accesslog` ("-" or a file), which `QuietLogger.access` writes.
_STREAMS = (logging.StreamHandler, logging.FileHandler)


class HideQueryStrings(logging.Filter):
    """Removes query strings from a server's own messages: gunicorn's error log names the
    request target of a request that failed ("Error handling request GET /x?token=..."), and
    Werkzeug's development server logs every request line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = _QUERY.sub(r"\1", message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def _gunicorn_logger_class():
    from gunicorn.glogging import Logger

    class QuietLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                logger.addFilter(HideQueryStrings())

        def access(self, resp, req, environ, request_time):
            # The line written straight to the access log's streams: through `logging` it cost
            # a record, a caller lookup and a formatting pass per request, about as much as
            # gunicorn's parsing of the request. Only for the plain setup `serve` makes (one
            # stream, "%(message)s"); any other goes through `logging` as before.
            handlers = self.access_log.handlers
            plain = not (self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog)
            if not plain or not all(type(h) in _STREAMS for h in handlers):
                return super().access(resp, req, environ, request_time)
            if not self.access_log_enabled:
                return None
            try:
                atoms = self.atoms(resp, req, environ, request_time)
                line = _QUERY.sub(r"\1", self.cfg.access_log_format % atoms) + "\n"
                for handler in handlers:
                    handler.acquire()
                    try:
                        handler.stream.write(line)
                        handler.flush()
                    finally:
                        handler.release()
            except Exception:
                self.error(traceback.format_exc())
            return None

        def atoms(self, resp, req, environ, request_time):
            # Only what ACCESS_LOG_FORMAT names: gunicorn's own builds every request header,
            # response header and environ entry into the dict too, on every request.
            status = resp.status
            if isinstance(status, str):
                status = status.split(None, 1)[0]
            sent = getattr(resp, "sent", None)
            return {
                "h": environ.get("REMOTE_ADDR", "-"),
                "t": self.now(),
                "m": environ.get("REQUEST_METHOD"),
                "U": environ.get("PATH_INFO"),
                "H": environ.get("SERVER_PROTOCOL"),
                "s": status,
                "b": str(sent) if sent is not None else "-",
                "L": f"{request_time.seconds}.{request_time.microseconds:06d}",
            }

    return QuietLogger


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn processes")
@click.option(
    "--worker-class",
    type=click.Choice(["gevent", "sync", "gthread"]),
    default="gevent",
    show_default=True,
    help="gunicorn worker class; gevent serves each connection in its own greenlet",
)
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn.")
def serve(host: str, port: int, workers: int, worker_class: str, dev: bool) -> None:
    """Run the web app (webhooks, health, API) under gunicorn."""
    settings = load_settings()

    if dev:
        from webhook_app import create_app

        logging.getLogger("werkzeug").addFilter(HideQueryStrings())
        create_app(settings).run(host=host, port=port)
        return
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            # A sync worker is held by one connection for as long as its sender cares to take
            # (two bodies trickled at a byte a second starved /healthz). Under gevent each
            # connection is a greenlet: a slow sender holds only its own, and the body is read
            # within a deadline (webhook_app.intake.read_body). psycopg (>= 3.1.14) waits
            # cooperatively once gevent has patched the standard library, redis-py is plain
            # sockets, and SQLite's short writes never yield inside a transaction.
            self.cfg.set("worker_class", worker_class)
            if worker_class == "gthread":
                self.cfg.set("threads", 8)
            self.cfg.set("accesslog", "-")
            self.cfg.set("access_log_format", ACCESS_LOG_FORMAT)
            self.cfg.set("logger_class", _gunicorn_logger_class())
            # Webhook senders wait at most 10 s (GitHub); a request stuck longer is a bug.
            self.cfg.set("timeout", 30)

        def load(self):
            # Built in the worker, after gevent has patched the standard library, so that the
            # engine's pool and the Redis client are made with cooperative locks and sockets.
            from webhook_app import create_app

            app = create_app(settings)
            # What is loaded by now lives as long as the process. Left to the collector, it
            # was scanned in every full collection: 70-120 ms in which the process answered
            # nobody, the slowest 1% of webhook requests under load (bench/load.py).
            gc.freeze()
            return app

    _App().run()


@click.command()
@click.option("--burst", is_flag=True, help="Drain the queue, then exit.")
def worker(burst: bool) -> None:
    """Run an RQ worker (relays pending deliveries at start and periodically)."""
    settings = load_settings()
    from workers.runner import run_worker

    run_worker(settings, burst=burst)


@click.command()
def scheduler() -> None:
    """Run the cron scheduler (relay every minute, reconcile hourly, and later reports)."""
    settings = load_settings()
    from workers.runner import run_scheduler

    run_scheduler(settings)


@click.command()
@click.option("--min-age", default=0.0, show_default=True, help="Skip deliveries younger (s).")
def relay(min_age: float) -> None:
    """Enqueue stored deliveries that Redis does not hold (pending, or lost by Redis)."""
    load_settings()
    from workers.relay import relay_pending

    click.echo(json.dumps(relay_pending(min_age_seconds=min_age)))


@click.command()
@click.argument("source", required=False)
def reconcile(source: str | None) -> None:
    """Heal what was lost: ask GitHub to redeliver failed webhook deliveries, then re-read what
    changed since the last good backfill. SOURCE is OWNER/REPO or a Jira key (default: all)."""
    settings = load_settings()
    from workers.reconcile import reconcile_source

    sources = settings.config.sources()
    if source is not None:
        kind = "github" if "/" in source else "jira"
        if settings.config.source(kind, source) is None:
            raise click.ClickException(f"{source} is not a source in the configuration")
        sources = [settings.config.source(kind, source)]
    require_schema(settings.database_url)
    result, failed = {}, False
    for each in sources:
        # One source at a time, each failure in one line with its reason (no credentials, the
        # API does not answer, what the API said), and the others still run.
        try:
            result[each.key] = reconcile_source(each.kind, each.key)
        except Exception as exc:
            # Anything else is still one source's failure: the others go on (README).
            reason = api_failure(exc) or f"{type(exc).__name__}: {str(exc)[:200]}"
            result[each.key], failed = {"error": reason}, True
            click.echo(f"trackrecord: reconcile {each.key}: {reason}", err=True)
    # One source named: its own result, as before; all: keyed by source.
    shown = result[sources[0].key] if source is not None else result
    click.echo(json.dumps(shown, default=str))
    if failed:
        sys.exit(1)


@click.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from trackrecord import migrate

    migrate.upgrade(load_settings().database_url, revision)


@db.command("current")
def db_current() -> None:
    from trackrecord import migrate

    migrate.current(load_settings().database_url)


@click.command("check-config")
def check_config() -> None:
    """Validate TRACKRECORD_CONFIG and list the sources it declares."""
    settings = load_settings()
    if settings.config.path is None:
        fail(
            "TRACKRECORD_CONFIG is not set, so every delivery would be ignored: point it at a "
            "TOML file (see deploy/trackrecord.example.toml)",
            code=2,
        )
    for source in settings.config.sources():
        click.echo(f"{source.kind:6} {source.key:40} team={source.team} client={source.client}")
    click.echo(f"ok: {settings.config.path}")


def _redis_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


def local_redis_dir(env=None) -> Path:
    """Where `up`'s own Redis keeps its append-only file: beside the default database, in the
    user's data directory, never relative to the current folder (run from another folder, a
    relative one started an empty queue there)."""
    from trackrecord.config import user_dir

    env = os.environ if env is None else env
    return user_dir(env, "XDG_DATA_HOME", ".local/share") / "trackrecord" / "redis"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def up(host: str, port: int) -> None:
    """Everything on one machine: web + worker + scheduler (+ a local Redis when none answers)."""
    from honcho.manager import Manager

    settings = load_settings()
    from trackrecord import migrate

    migrate.upgrade(settings.database_url)
    exe = [sys.executable, "-m", "cli"]
    manager = Manager()
    env = dict(os.environ)
    parsed = urlparse(settings.redis_url)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if local and not _redis_reachable(settings.redis_url):
        server = shutil.which("redis-server")
        if server is None:
            raise click.ClickException("no Redis answers and redis-server is not installed")
        folder = local_redis_dir()
        folder.mkdir(parents=True, exist_ok=True)
        # appendonly: a local Redis that keeps its queue across restarts (relay heals it anyway).
        manager.add_process(
            "redis",
            f"{server} --port {parsed.port or 6379} --bind 127.0.0.1"
            f" --dir {shlex.quote(str(folder))} --appendonly yes --save ''",
            env=env,
        )
    q = " ".join(exe)
    manager.add_process("web", f"{q} serve --host {host} --port {port}", env=env)
    manager.add_process("worker", f"{q} worker", env=env)
    manager.add_process("scheduler", f"{q} scheduler", env=env)
    manager.loop()
    sys.exit(manager.returncode)
