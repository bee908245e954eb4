"""End to end with the real processes: `trackrecord db upgrade`, `trackrecord serve` (gunicorn)
answering over HTTP, and `trackrecord worker --burst` processing what it stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import port_for
import pytest
import requests
from sqlalchemy import select

from tests.helpers import fixture_bytes, github_headers, jira_headers
from trackrecord.db import session_factory
from trackrecord.models import Delivery

CLI = [sys.executable, "-m", "cli"]


@pytest.fixture
def server(env):
    port = port_for.select_random()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "2"],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode() if proc.poll() is not None else ""
            proc.kill()
            pytest.fail(f"trackrecord serve did not start: {out}")
        time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(15)


def test_db_upgrade_creates_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run([*CLI, "db", "upgrade"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    current = subprocess.run([*CLI, "db", "current"], env=env, capture_output=True, text=True)
    assert "(head)" in current.stdout


def test_serve_and_worker_process_real_http_deliveries(server, settings):
    assert requests.get(f"{server}/readyz", timeout=5).json()["status"] == "ready"
    gh = fixture_bytes("github/issues.milestoned.json")
    r1 = requests.post(
        f"{server}/webhooks/github", data=gh, headers=github_headers("issues", gh, "e2e-1")
    )
    jb = fixture_bytes("jira/jira.issue_updated.resolved.json")
    r2 = requests.post(f"{server}/webhooks/jira", data=jb, headers=jira_headers(jb, "e2e-2"))
    assert (r1.status_code, r2.status_code) == (202, 202), (r1.text, r2.text)
    bad = requests.post(
        f"{server}/webhooks/github", data=gh, headers=github_headers("issues", gh, secret="x")
    )
    assert bad.status_code == 401 and bad.json()["error"] == "bad_signature"

    done = subprocess.run([*CLI, "worker", "--burst"], env=os.environ.copy(), timeout=120)
    assert done.returncode == 0
    with session_factory(settings.database_url)() as s:
        rows = s.execute(select(Delivery.delivery_id, Delivery.status).order_by(Delivery.id)).all()
    assert rows == [("e2e-1", "processed"), ("e2e-2", "processed")]
