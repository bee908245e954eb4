"""Per-process access to settings, sessions and the ledger's directory for jobs (which receive
only ids)."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session, sessionmaker

from connectors.directory import build_directory
from ledger.teams import Directory
from trackrecord.config import Settings
from trackrecord.db import session_factory

_ENV_KEYS = ("DATABASE_URL", "REDIS_URL", "TRACKRECORD_CONFIG", "TRACKRECORD_QUEUE")
_cache: dict[tuple, tuple[Settings, Directory, sessionmaker[Session]]] = {}


def _current() -> tuple[Settings, Directory, sessionmaker[Session]]:
    # Re-read when the environment changes (tests switch databases); otherwise parse the
    # configuration file once per process, not once per job (the worker does not fork: one
    # process runs every job, with one engine and its pooled connections).
    key = tuple(os.environ.get(k) for k in _ENV_KEYS)
    if key not in _cache:
        _cache.clear()
        settings = Settings.from_env()
        sessions = session_factory(settings.database_url)
        _cache[key] = settings, build_directory(settings.config), sessions
    return _cache[key]


def settings() -> Settings:
    return _current()[0]


def directory() -> Directory:
    """The teams' rules and the sources' owners, as the ledger reads them."""
    return _current()[1]


def sessions() -> sessionmaker[Session]:
    return _current()[2]
