"""What the intake and drain benchmarks send: real-shaped, signed GitHub `issues` deliveries of
about 8 KB with fresh ids, the configuration that routes them, and the ledger checks after.

Each delivery is tests/fixtures/github/issues.milestoned.json (a real GitHub payload) with its
own issue number and id, its API links trimmed and its issue text set to make the body about
BODY_BYTES long (8.3-8.5 KB: the links left are the issue's own), so every delivery creates a
commitment row of its own (a promised date from its milestone) and the worker does the work a
real delivery costs.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import func, select

from trackrecord import migrate
from trackrecord.config import Settings, load_config
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from webhook_app.signatures import sign

FIXTURE = Path(__file__).parent.parent / "tests/fixtures/github/issues.milestoned.json"
SECRET = "bench-secret"
REPO = "Codertocat/Hello-World"
BODY_BYTES = 8192
CONFIG = f"""
[[clients]]
name = "bench"
[[clients.teams]]
name = "bench"
github = ["{REPO}"]
"""
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# The issues are spread over this many milestones of the repository: the ledger serialises the
# writers of one milestone (ledger.store_common.lock_scopes), so a burst into a single milestone is
# the worst case for more than one worker (bench/drain.py --milestones 1 measures it).
MILESTONES = 20


def issue_body(number: int, milestones: int = MILESTONES) -> bytes:
    """The `issues.milestoned` payload for issue `number`, BODY_BYTES long, into milestone
    `number % milestones`."""
    doc = json.loads(FIXTURE.read_bytes())
    doc["issue"]["number"] = number
    doc["issue"]["id"] = 10_000_000 + number
    m = number % milestones + 1
    for milestone in (doc["issue"]["milestone"], doc["milestone"]):
        milestone.update(number=m, id=4_000_000 + m, title=f"v{m}.0")
    doc["issue"]["body"] = ""
    # The fixture's repository object alone is near 8 KB: its API links (`*_url`, which no
    # reader here uses) go first, until the rest fits.
    for obj in (doc["repository"], doc["sender"], doc["issue"]["user"]):
        for key in [k for k in obj if k.endswith("_url")]:
            if _size(doc) <= BODY_BYTES:
                break
            del obj[key]
    base = _size(doc)
    doc["issue"]["body"] = "x" * max(0, BODY_BYTES - base)
    return json.dumps(doc, separators=(",", ":")).encode()


def _size(doc: dict) -> int:
    return len(json.dumps(doc, separators=(",", ":")).encode())


def headers(body: bytes, delivery: str | None = None) -> dict[str, str]:
    return {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }


def redis_url(host: str = "127.0.0.1", port: int = 6379) -> str:
    """A Redis db of the run's own, claimed the way the test suite claims one (tests/conftest.py,
    a key with a TTL in db 0), so a test session does not flush it mid-run, nor the run its."""
    from redis import Redis

    admin = Redis(host=host, port=port, db=0)
    for db in range(15, 0, -1):
        if admin.set(f"trackrecord:test-db:{db}", f"bench-{os.getpid()}", nx=True, ex=3600):
            return f"redis://{host}:{port}/{db}"
    raise SystemExit("all 15 Redis dbs are claimed by test sessions; try again later")


def release_redis(url: str) -> None:
    """Empty the run's Redis db and give it back."""
    from redis import Redis

    conn = Redis.from_url(url)
    conn.flushdb()
    db = url.rsplit("/", 1)[1]
    Redis.from_url(url.rsplit("/", 1)[0] + "/0").delete(f"trackrecord:test-db:{db}")


def fresh_database(engine: str, tag: str) -> str:
    """An empty, migrated database: a SQLite file, or a PostgreSQL database made for the run."""
    if engine == "sqlite":
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / f'{tag}.db'}"
    else:
        from sqlalchemy import create_engine, text

        name = f"trackrecord_bench_{tag}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    migrate.upgrade(url)
    return url


def drop_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text

    from trackrecord.db import dispose_all

    dispose_all()
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def environment(database_url: str, redis_url: str, queue: str) -> dict[str, str]:
    """The environment `trackrecord serve` and `trackrecord worker` read for a run."""
    path = Path(tempfile.mkdtemp()) / "bench.toml"
    path.write_text(CONFIG)
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRACKRECORD_CONFIG": str(path),
        "TRACKRECORD_QUEUE": queue,
        "GITHUB_WEBHOOK_SECRET": SECRET,
    }


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(
        database_url=env["DATABASE_URL"],
        redis_url=env["REDIS_URL"],
        config=load_config(Path(env["TRACKRECORD_CONFIG"])),
        queue_name=env["TRACKRECORD_QUEUE"],
    )


def store(env: dict[str, str], n: int, start: int = 1, milestones: int = MILESTONES) -> None:
    """Post n deliveries through the intake (Flask's test client, in this process): stored and
    queued exactly as `trackrecord serve` would store and queue them."""
    from webhook_app import create_app

    os.environ["GITHUB_WEBHOOK_SECRET"] = SECRET
    client = create_app(settings_of(env)).test_client()
    for number in range(start, start + n):
        body = issue_body(number, milestones)
        resp = client.post("/webhooks/github", data=body, headers=headers(body))
        assert resp.status_code == 202 and resp.json["status"] == "queued", resp.json


def ledger_check(database_url: str, delivery_ids: set[str] | None = None) -> dict[str, int]:
    """Deliveries by status, and commitment rows against the distinct issues delivered: each
    acknowledged delivery must be processed once, and each issue make exactly one row."""
    Session = session_factory(database_url)
    with Session() as s:
        by_status = dict(
            s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
        stored = set(s.scalars(select(Delivery.delivery_id)))
        rows = s.execute(
            select(func.count(), func.count(func.distinct(_item_column()))).select_from(
                _commitments()
            )
        ).one()
    out = {"stored": len(stored), **by_status, "commitments": rows[0], "items": rows[1]}
    if delivery_ids is not None:
        out["acknowledged_missing"] = len(delivery_ids - stored)
    return out


def _commitments():
    from ledger.tables import Commitment

    return Commitment.__table__


def _item_column():
    return _commitments().c.item_id
