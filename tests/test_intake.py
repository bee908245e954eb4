"""Intake: real payloads signed as the platforms sign them, stored once, processed by a real
RQ worker through a real Redis, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from rq import Queue
from sqlalchemy import func, select

from tests.helpers import (
    FIXTURES,
    event_of,
    fixture_bytes,
    github_headers,
    jira_headers,
)
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from workers.runner import TrackrecordWorker

GITHUB_FIXTURES = sorted(
    p.name for p in (FIXTURES / "github").glob("*.json") if "ping" not in p.name
)
JIRA_FIXTURES = sorted(p.name for p in (FIXTURES / "jira").glob("*.json"))


def rows(settings) -> list[Delivery]:
    with session_factory(settings.database_url)() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def run_worker(settings, redis_conn) -> None:
    queue = Queue(settings.queue_name, connection=redis_conn)
    TrackrecordWorker([queue], connection=redis_conn).work(burst=True)


@pytest.mark.parametrize("name", GITHUB_FIXTURES)
def test_github_payload_is_stored_queued_and_processed(client, settings, redis_conn, name):
    body = fixture_bytes(f"github/{name}")
    headers = github_headers(event_of(name), body, delivery=f"gh-{name}")
    resp = client.post("/webhooks/github", data=body, headers=headers)
    assert resp.status_code == 202, resp.json
    assert resp.json == {"delivery": f"gh-{name}", "status": "queued"}

    [row] = rows(settings)
    assert (row.source, row.delivery_id, row.event) == ("github", f"gh-{name}", event_of(name))
    assert row.body == body  # the raw bytes, exactly as signed
    assert row.headers["X-Github-Event"] == event_of(name)
    assert row.status == "queued"
    assert row.team in ("platform", "web")

    run_worker(settings, redis_conn)
    [row] = rows(settings)
    assert row.status == "processed"
    assert row.processed_at is not None


@pytest.mark.parametrize("name", JIRA_FIXTURES)
def test_jira_payload_is_stored_queued_and_processed(client, settings, redis_conn, name):
    body = fixture_bytes(f"jira/{name}")
    resp = client.post("/webhooks/jira", data=body, headers=jira_headers(body, f"j-{name}"))
    project = json.loads(body)["issue"]["key"].rsplit("-", 1)[0]
    if project in ("TES", "KT"):
        assert resp.status_code == 202, resp.json
        assert resp.json["status"] == "queued"
        run_worker(settings, redis_conn)
        [row] = rows(settings)
        assert (row.status, row.source_key, row.event) == (
            "processed",
            project,
            json.loads(body)["webhookEvent"],
        )
    else:
        # IDT (the deleted-issue fixture) belongs to no team: acknowledged, never stored.
        assert resp.status_code == 200
        assert resp.json["status"] == "ignored"
        assert rows(settings) == []


def test_ping_answers_200_and_is_not_stored(client, settings):
    body = fixture_bytes("github/ping.json")
    resp = client.post("/webhooks/github", data=body, headers=github_headers("ping", body, "p1"))
    assert resp.status_code == 200
    assert resp.json["status"] == "pong"
    assert rows(settings) == []


def test_redelivery_is_stored_and_processed_once(client, settings, redis_conn):
    body = fixture_bytes("github/issues.opened.json")
    headers = github_headers("issues", body, delivery="same-id")
    first = client.post("/webhooks/github", data=body, headers=headers)
    second = client.post("/webhooks/github", data=body, headers=headers)
    assert (first.status_code, first.json["status"]) == (202, "queued")
    assert (second.status_code, second.json["status"]) == (200, "duplicate")
    assert Queue(settings.queue_name, connection=redis_conn).count == 1
    run_worker(settings, redis_conn)
    third = client.post("/webhooks/github", data=body, headers=headers)
    assert third.json["status"] == "duplicate"
    assert Queue(settings.queue_name, connection=redis_conn).count == 0
    [row] = rows(settings)
    assert (row.status, row.attempts) == ("processed", 1)


def test_fifty_concurrent_posts_of_one_delivery_store_one_row(client, settings, redis_conn):
    body = fixture_bytes("github/issues.milestoned.json")
    headers = github_headers("issues", body, delivery="raced")

    def post(_):
        return client.post("/webhooks/github", data=body, headers=headers)

    # Each thread gets its own test client request, but all share the app and its database.
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, range(50)))
    statuses = sorted(a.json["status"] for a in answers)
    assert [a.status_code for a in answers].count(202) == 1
    assert statuses.count("queued") == 1 and statuses.count("duplicate") == 49
    with session_factory(settings.database_url)() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 1
    run_worker(settings, redis_conn)
    assert [r.status for r in rows(settings)] == ["processed"]


def test_form_encoded_github_delivery_is_accepted(client, settings, redis_conn):
    payload = fixture_bytes("github/issues.opened.json").decode()
    body = urlencode({"payload": payload}).encode()
    headers = github_headers("issues", body, "form-1")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    resp = client.post("/webhooks/github", data=body, headers=headers)
    assert resp.status_code == 202, resp.json
    run_worker(settings, redis_conn)
    [row] = rows(settings)
    assert row.status == "processed"
    assert row.body == body


def test_unlisted_repository_is_ignored_and_not_stored(client, settings):
    doc = json.loads(fixture_bytes("github/issues.opened.json"))
    doc["repository"]["full_name"] = "stranger/repo"
    body = json.dumps(doc).encode()
    resp = client.post("/webhooks/github", data=body, headers=github_headers("issues", body))
    assert resp.status_code == 200
    assert resp.json["status"] == "ignored"
    assert "stranger/repo" in resp.json["reason"]
    assert rows(settings) == []


def test_a_source_with_its_own_secret_uses_it(client, settings):
    doc = json.loads(fixture_bytes("github/issues.opened.json"))
    doc["repository"]["full_name"] = "acme-corp/own-secret"
    body = json.dumps(doc).encode()
    wrong = client.post("/webhooks/github", data=body, headers=github_headers("issues", body))
    assert wrong.status_code == 401  # the global secret is not this source's secret
    right = client.post(
        "/webhooks/github", data=body, headers=github_headers("issues", body, secret="own-secret")
    )
    assert right.status_code == 202
    assert [r.team for r in rows(settings)] == ["web"]


def test_jira_without_identifier_falls_back_to_body_hash(client, settings):
    body = fixture_bytes("jira/jira.issue_created.json")
    headers = jira_headers(body)
    del headers["X-Atlassian-Webhook-Identifier"]
    first = client.post("/webhooks/jira", data=body, headers=headers)
    again = client.post("/webhooks/jira", data=body, headers=headers)
    assert (first.status_code, again.json["status"]) == (202, "duplicate")
    expected = "sha256-" + hashlib.sha256(body).hexdigest()
    assert [r.delivery_id for r in rows(settings)] == [expected]


def test_fixture_names_match_their_events():
    # The tests derive X-GitHub-Event from the file name; a renamed file must not slip by.
    for name in GITHUB_FIXTURES:
        doc = json.loads((FIXTURES / "github" / name).read_bytes())
        assert doc.get("action") == Path(name).stem.split(".")[1], name
