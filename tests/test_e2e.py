"""End to end with the real processes: `trackrecord db upgrade`, `trackrecord serve` (gunicorn)
answering over HTTP, and `trackrecord worker --burst` processing what it stored."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import port_for
import pytest
import requests
from sqlalchemy import select

from cli.processes import HideQueryStrings
from tests.helpers import fixture_bytes, github_headers, jira_headers
from trackrecord.db import session_factory
from trackrecord.models import Delivery

CLI = [sys.executable, "-m", "cli"]


class Served:
    """A `trackrecord serve` process on a free port; its output goes to a file, `output()`."""

    def __init__(self, log_path, *args: str):
        self.port = port_for.select_random()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port), *args],
            env=os.environ.copy(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, seconds: float = 30) -> Served:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or its workers still boot
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"trackrecord serve did not start: {self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def served(env, tmp_path):
    """The web app under gunicorn, as `trackrecord serve` runs it (gevent workers)."""
    server = Served(tmp_path / "serve.log", "--workers", "2").wait_ready()
    yield server
    server.stop()


@pytest.fixture
def server(served) -> str:
    return served.base


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


def test_query_strings_never_reach_the_logs(served):
    """A token sent in the query string is refused (the API reads only the Authorization
    header), and it must not then be kept in the access log or any other log line."""
    secret = "SECRET123"
    api = f"{served.base}/api/v1/teams/platform/track-record"
    resp = requests.get(f"{api}?from=2026-01-01&to=2026-06-30&token={secret}", timeout=10)
    assert resp.status_code == 401
    body = fixture_bytes("github/issues.opened.json")
    hook = requests.post(
        f"{served.base}/webhooks/github?access_token={secret}",
        data=body,
        headers=github_headers("issues", body, secret="wrong"),
        timeout=10,
    )
    assert hook.status_code == 401
    missing = requests.get(f"{served.base}/nowhere?token={secret}", timeout=10)
    assert missing.status_code == 404
    served.stop()  # flushes everything it wrote
    logged = served.output()
    assert '"GET /api/v1/teams/platform/track-record HTTP/1.1" 401' in logged
    assert "bad_signature" in logged
    assert secret not in logged


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("Error handling request %s %s", ("GET", "/api/v1/teams/x/track-record?token=SECRET123")),
        ("%s - - [%s] %s", ("127.0.0.1", "now", '"GET /badges/x.svg?token=SECRET123 HTTP/1.1"')),
        ("Invalid request from ip=127.0.0.1: bad line 'GET /x?a=1&token=SECRET123'", ()),
    ],
    ids=["gunicorn error", "werkzeug request line", "no args"],
)
def test_server_messages_lose_their_query_strings(message, args):
    record = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, message, args, None)
    assert HideQueryStrings().filter(record)
    shown = record.getMessage()
    assert "SECRET123" not in shown and "?" not in shown
    assert "/x" in shown or "/api/v1/teams/x/track-record" in shown or "/badges/x.svg" in shown
