"""Engines and sessions. SQLite (WAL) is the embedded default; PostgreSQL is for production."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[tuple[int, str, bool], Engine] = {}

# Connections the intake's engine keeps open per web process (as many again opened beyond it,
# then closed). A process writes one group of deliveries at a time (webhook_app.intake_group),
# so one is in use; the second covers a moment when a pool is replaced.
INTAKE_POOL = 2
# How long a SQLite writer waits for the write lock before "database is locked". A worker
# asked to stop cannot be interrupted while it waits: its grace period must cover this.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_conn, _record, busy_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    # WAL lets the web process write while workers read; busy_timeout makes concurrent writers
    # wait for the lock instead of failing at once with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """`autocommit`: every statement is its own transaction, committed when it returns (the
    web intake's single INSERT: no BEGIN and COMMIT round trips). A pool of its own, so its
    connections are never switched between the two modes."""
    u = make_url(url)
    extra = {}
    if autocommit:
        # The web intake. Its connections are kept open (INTAKE_POOL): one made and dropped
        # per use was most of PostgreSQL's cost under load (a backend started per connection).
        extra = {
            "isolation_level": "AUTOCOMMIT",
            "pool_size": INTAKE_POOL,
            "max_overflow": INTAKE_POOL,
        }
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        # Python's sqlite3 opens its own transactions lazily; we let SQLAlchemy drive them.
        # The intake's engine does not wait in SQLite's busy handler, which sleeps the whole
        # process (every greenlet of a gevent worker) for up to 100 ms a try: it is told "locked"
        # at once and waits itself, letting the other requests run (webhook_app.intake_rows).
        busy_ms = 0 if autocommit else SQLITE_BUSY_TIMEOUT_MS
        engine = create_engine(
            url,
            connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
            **extra,
        )
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=busy_ms))
        return engine
    return create_engine(
        url,
        # A round trip before every checkout, so a connection the database dropped (a restart)
        # is replaced unseen. The autocommit engine does without: its one statement is retried
        # once on a fresh connection instead (webhook_app.intake_group), saving a round trip.
        pool_pre_ping=not autocommit,
        # A dead database must answer quickly (503), not hang the webhook request.
        connect_args={"connect_timeout": 5},
        **extra,
    )


def get_engine(url: str, *, autocommit: bool = False) -> Engine:
    """One engine per process, URL and mode. Keyed by pid so a forked RQ work horse never
    reuses the parent's pooled connections (sharing a socket across processes corrupts both)."""
    key = (os.getpid(), url, autocommit)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = make_engine(url, autocommit=autocommit)
    return engine


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


def dispose_all() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
