"""Shared fixtures: a real Redis and real databases (SQLite file and PostgreSQL).

Where a Redis or PostgreSQL already answers on its usual local port, the tests use it (on
their own Redis db number, their own PostgreSQL database per test); where none answers,
pytest-redis / pytest-postgresql start a private server for the session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from pytest_postgresql import factories as pg_factories
from pytest_redis import factories as redis_factories
from redis import Redis

from tests.helpers import CLIENT_TOKEN, GITHUB_SECRET, JIRA_SECRET
from trackrecord import migrate
from trackrecord.config import Settings
from trackrecord.db import dispose_all

# The CLI reads the user's env file (`~/.config/trackrecord/env`, written by ./scripts/run);
# tests never do, so a developer's settings or secrets cannot leak into them. Tests of the
# env file name their own.
os.environ["TRACKRECORD_ENV_FILE"] = ""


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 0.5):
            return True
    except OSError:
        return False


def _pg_ctl() -> str | None:
    found = shutil.which("pg_ctl") or sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if isinstance(found, list):
        return found[-1] if found else None
    return found


redis_own = redis_factories.redis_proc(port=None, executable=shutil.which("redis-server"))
# Per-session database names, for the same reason as the Redis db number above.
PG_TEST_DB = f"trackrecord_test_{os.getpid()}"
PG_PORT = int(os.environ.get("TRACKRECORD_TEST_PG_PORT", 5432))
pg_shared = pg_factories.postgresql_noproc(
    host="127.0.0.1", port=PG_PORT, user="postgres", dbname=PG_TEST_DB
)
pg_own = pg_factories.postgresql_proc(port=None, executable=_pg_ctl(), dbname=PG_TEST_DB)
pg_shared_db = pg_factories.postgresql("pg_shared")
pg_own_db = pg_factories.postgresql("pg_own")


REDIS_PORT = int(os.environ.get("TRACKRECORD_TEST_REDIS_PORT", 6379))


@pytest.fixture(scope="session")
def redis_server(request) -> tuple[str, int]:
    if _reachable("127.0.0.1", REDIS_PORT):
        return "127.0.0.1", REDIS_PORT
    proc = request.getfixturevalue("redis_own")
    return proc.host, int(proc.port)


@pytest.fixture(scope="session")
def redis_db(redis_server) -> int:
    """A Redis db number of this session's own: two suites running at once on one machine (a
    developer and CI, or parallel sessions) must not flush each other's queues. The claim is a
    key with a TTL in db 0, so a crashed session frees its number within the hour."""
    if "TRACKRECORD_TEST_REDIS_DB" in os.environ:
        yield int(os.environ["TRACKRECORD_TEST_REDIS_DB"])
        return
    host, port = redis_server
    admin = Redis(host=host, port=port, db=0)
    for db in range(1, 16):
        if admin.set(f"trackrecord:test-db:{db}", os.getpid(), nx=True, ex=3600):
            break
    else:
        pytest.fail("all 15 Redis test dbs are claimed by other test sessions")
    yield db
    admin.delete(f"trackrecord:test-db:{db}")
    admin.close()


@pytest.fixture
def redis_url(redis_server, redis_db) -> str:
    host, port = redis_server
    url = f"redis://{host}:{port}/{redis_db}"
    conn = Redis.from_url(url)
    conn.flushdb()
    yield url
    conn.flushdb()
    conn.close()


@pytest.fixture
def redis_conn(redis_url) -> Redis:
    conn = Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def postgres_url(request) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    own = os.environ.get("TRACKRECORD_TEST_PG") == "own" or not _reachable("127.0.0.1", PG_PORT)
    name = "pg_own_db" if own else "pg_shared_db"
    conn = request.getfixturevalue(name)
    info = conn.info
    return f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{info.dbname}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'trackrecord.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate.upgrade(url)
    yield url
    dispose_all()


CONFIG_TOML = """
[[clients]]
name = "acme"
timezone = "Europe/Berlin"
token_env = "ACME_API_TOKEN"

[[clients.teams]]
name = "platform"
timezone = "UTC"
github = ["Codertocat/Hello-World", "Pritesh-30/test-repo"]
jira = ["TES"]

[[clients.teams]]
name = "web"
timezone = "Europe/Berlin"
github = [
  "robvanderleek/create-issue-branch",
  { repo = "acme-corp/own-secret", secret_env = "OWN_HOOK_SECRET" },
]
jira = ["KT"]
"""


@pytest.fixture
def config_path(tmp_path) -> Path:
    path = tmp_path / "trackrecord.toml"
    path.write_text(CONFIG_TOML)
    return path


@pytest.fixture
def env(monkeypatch, database_url, redis_url, config_path):
    """The process environment the web app, the jobs and the CLI all read."""
    values = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRACKRECORD_CONFIG": str(config_path),
        "TRACKRECORD_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "JIRA_WEBHOOK_SECRET": JIRA_SECRET,
        "OWN_HOOK_SECRET": "own-secret",
        "ACME_API_TOKEN": CLIENT_TOKEN,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def settings(env) -> Settings:
    return Settings.from_env()


@pytest.fixture
def app(settings):
    from webhook_app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def own_redis(tmp_path, monkeypatch, env):
    """A redis-server of the test's own, without persistence: stopped, it comes back empty."""
    from tests.helpers import RedisServer

    server = RedisServer(tmp_path).start()
    monkeypatch.setenv("REDIS_URL", server.url)
    yield server
    server.stop()


@pytest.fixture
def stack(env, tmp_path):
    """Real `trackrecord serve` and `trackrecord worker` processes (tests/fault_procs.py)."""
    from tests.fault_procs import Stack

    parts = Stack(tmp_path)
    yield parts
    parts.close()
