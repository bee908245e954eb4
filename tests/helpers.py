"""Helpers for tests: fixture files and signed headers, as GitHub and Jira would send them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from webhook_app.signatures import sign

FIXTURES = Path(__file__).parent / "fixtures"
GITHUB_SECRET = "test-github-secret"
JIRA_SECRET = "test-jira-secret"
CLIENT_TOKEN = "acme-client-token"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def github_headers(event: str, body: bytes, delivery: str | None = None, secret=GITHUB_SECRET):
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
    }


def jira_headers(body: bytes, delivery: str | None = None, secret=JIRA_SECRET):
    return {
        "X-Atlassian-Webhook-Identifier": delivery or str(uuid.uuid4()),
        "X-Hub-Signature": sign(secret, body),
        "Content-Type": "application/json; charset=UTF-8",
    }


def event_of(fixture_name: str) -> str:
    """issues.closed.json -> issues (the file names follow '<event>.<action>...json')."""
    return Path(fixture_name).name.split(".", 1)[0]


def json_of(name: str) -> dict:
    return json.loads(fixture_bytes(name))


class RedisServer:
    """A private redis-server the test may stop and start, with no persistence at all, like a
    Redis restarted from nothing. (The shared one must not be stopped under other tests.)"""

    def __init__(self, tmp_path: Path):
        import port_for

        self.port = port_for.select_random()
        self.dir = tmp_path
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import shutil
        import subprocess
        import time

        from redis import Redis

        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = [
            exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
