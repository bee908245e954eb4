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
