"""Per-process access to settings and sessions for jobs (which receive only ids)."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session, sessionmaker

from trackrecord.config import Settings
from trackrecord.db import session_factory

_ENV_KEYS = ("DATABASE_URL", "REDIS_URL", "TRACKRECORD_CONFIG", "TRACKRECORD_QUEUE")
_cache: dict[tuple, Settings] = {}


def settings() -> Settings:
    # Re-read when the environment changes (tests switch databases); otherwise parse the
    # configuration file once per process, not once per job.
    key = tuple(os.environ.get(k) for k in _ENV_KEYS)
    if key not in _cache:
        _cache.clear()
        _cache[key] = Settings.from_env()
    return _cache[key]


def sessions() -> sessionmaker[Session]:
    return session_factory(settings().database_url)
