"""`trackrecord status`: what it reports after real deliveries and a real RQ worker, and its exit
code when the database or Redis does not answer (one plain line, never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import port_for
import pytest
from rq import Queue, Worker

from tests.helpers import fixture_bytes, github_headers
from trackrecord.db import session_factory
from trackrecord.models import SyncState
from workers.reconcile import HOOK_SYNC_SOURCE
from workers.runner import TrackrecordWorker

CLI = [sys.executable, "-m", "cli"]


def status(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "status", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def post(client, fixture: str, delivery: str, body: bytes | None = None):
    body = body or fixture_bytes(f"github/{fixture}")
    resp = client.post(
        "/webhooks/github", data=body, headers=github_headers("issues", body, delivery)
    )
    assert resp.status_code == 202, resp.json


def closed_port_url(scheme: str) -> str:
    port = port_for.select_random()  # free, so nothing listens there
    return {
        "redis": f"redis://127.0.0.1:{port}/0",
        "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{port}/trackrecord",
    }[scheme]


def test_status_reports_deliveries_queues_workers_and_history(client, settings, redis_conn):
    post(client, "issues.opened.json", "s-1")
    post(client, "issues.closed.json", "s-2")
    doc = json.loads(fixture_bytes("github/issues.opened.json"))
    doc["issue"] = "not an object"  # the connector refuses it: the delivery ends failed
    post(client, "", "s-3", json.dumps(doc).encode())

    found = status("--json")
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    assert report["ok"] is True
    assert report["database"]["deliveries"]["queued"] == 3
    assert report["database"]["oldest_pending_received_at"] is not None
    assert report["redis"]["queues"][settings.queue_name]["queued"] == 3
    assert report["redis"]["workers"] == {"alive": 0, "stale": 0}
    assert report["database"]["last_reconcile"] == "never"
    assert report["database"]["last_report"] == "never"

    queue = Queue(settings.queue_name, connection=redis_conn)
    TrackrecordWorker([queue], connection=redis_conn).work(burst=True)
    # A worker that is up: registered, with a fresh heartbeat, as `trackrecord worker` keeps.
    alive = Worker([queue], connection=redis_conn, name="status-test-worker")
    alive.register_birth()
    alive.heartbeat()
    with session_factory(settings.database_url)() as session, session.begin():
        session.add(
            SyncState(
                source=HOOK_SYNC_SOURCE,
                key="Codertocat/Hello-World",
                last_synced_at=datetime.now(UTC),
            )
        )

    found = status("--json")
    assert found.returncode == 0, found.stderr
    report = json.loads(found.stdout)
    deliveries = report["database"]["deliveries"]
    assert (deliveries["processed"], deliveries["failed"], deliveries["queued"]) == (2, 1, 0)
    assert report["database"]["oldest_pending_received_at"] is None
    assert report["redis"]["queues"][settings.queue_name]["queued"] == 0
    assert report["redis"]["workers"]["alive"] == 1
    assert report["database"]["last_reconcile"].startswith(str(datetime.now(UTC).year))

    plain = status()
    assert plain.returncode == 0
    assert "deliveries: 0 pending, 0 queued, 1 failed, 2 processed" in plain.stdout
    assert f"queue {settings.queue_name}: 0 queued" in plain.stdout
    assert "workers: 1 alive" in plain.stdout
    assert "last report run: never" in plain.stdout
    alive.register_death()


def _one_plain_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_redis_down_exits_non_zero_naming_redis(env):
    result = status(REDIS_URL=closed_port_url("redis"))
    line = _one_plain_line(result)
    assert "Redis" in line and "database" not in line
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_database_down_exits_non_zero_naming_the_database(env, tmp_path, kind):
    url = (
        f"sqlite:///{tmp_path / 'no-such-dir' / 'trackrecord.db'}"
        if kind == "sqlite"
        else closed_port_url("postgresql")
    )
    line = _one_plain_line(status(DATABASE_URL=url))
    assert "database" in line and "Redis" not in line


def test_both_down_name_both_and_json_says_which(env, tmp_path):
    result = status(
        "--json",
        DATABASE_URL=closed_port_url("postgresql"),
        REDIS_URL=closed_port_url("redis"),
    )
    line = _one_plain_line(result)
    assert "database" in line and "Redis" in line
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert set(report["unreachable"]) == {"database", "redis"}
