"""/metrics (Prometheus) and the logs: signed webhooks through the real app and a real RQ
worker, then the scrape read back with prometheus_client's own parser; on SQLite and
PostgreSQL. (tests/test_metrics.py is about the track-record figures, not this.)"""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from tests.helpers import GITHUB_SECRET, fixture_bytes, github_headers, jira_headers
from trackrecord.logs import REDACTED, configure
from webhook_app.signatures import sign
from workers.runner import TrackrecordWorker

TOKEN = "scrape-token-0123456789"


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.data
    assert resp.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(resp.data.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def received(samples, event: str, outcome: str, reason: str = "", source="github") -> float:
    return value(
        samples,
        "trackrecord_deliveries_received_total",
        source=source,
        event=event,
        outcome=outcome,
        reason=reason,
    )


def run_worker(settings, redis_conn) -> None:
    queue = Queue(settings.queue_name, connection=redis_conn)
    TrackrecordWorker([queue], connection=redis_conn).work(burst=True)


def post_github(client, fixture: str, event: str, delivery: str, **overrides):
    body = fixture_bytes(f"github/{fixture}")
    headers = {**github_headers(event, body, delivery=delivery), **overrides}
    resp = client.post("/webhooks/github", data=body, headers=headers)
    resp.close()  # as a server does once the answer is sent: the outcome is counted then
    return resp


def test_metrics_count_what_intake_and_the_worker_did(client, settings, redis_conn):
    assert post_github(client, "issues.opened.json", "issues", "d-1").status_code == 202
    assert post_github(client, "issues.closed.json", "issues", "d-2").status_code == 202
    assert post_github(client, "issues.opened.json", "issues", "d-1").status_code == 200
    bad = post_github(
        client, "issues.opened.json", "issues", "d-3", **{"X-Hub-Signature-256": "sha256=00"}
    )
    assert bad.status_code == 401
    assert post_github(client, "issues.opened.json", "deployment", "d-4").status_code == 400
    # An event name a sender made up is counted under "other", not as a label of its own.
    assert post_github(client, "issues.opened.json", "made-up-event", "d-5").status_code == 400
    body = fixture_bytes("jira/jira.issue_created.json")
    resp = client.post("/webhooks/jira", data=body, headers=jira_headers(body, delivery="j-1"))
    resp.close()
    assert resp.status_code == 202

    before = scrape(client)
    assert value(before, "trackrecord_up", part="database") == 1
    assert value(before, "trackrecord_up", part="redis") == 1
    assert received(before, "issues", "queued") == 2
    assert received(before, "issues", "duplicate") == 1
    assert received(before, "issues", "rejected", "bad_signature") == 1
    assert received(before, "other", "rejected", "unsupported_event") == 2
    assert (
        sum(
            v
            for (n, labels), v in before.items()
            if n == "trackrecord_deliveries_received_total" and ("source", "jira") in labels
        )
        == 1
    )
    assert value(before, "trackrecord_deliveries", status="queued") == 3
    assert value(before, "trackrecord_deliveries", status="processed") == 0
    assert (
        value(
            before,
            "trackrecord_deliveries_unprocessed",
            source="github",
            event="issues",
            status="queued",
        )
        == 2
    )
    assert value(before, "trackrecord_queue_jobs", queue=settings.queue_name, state="queued") == 3
    assert value(before, "trackrecord_oldest_pending_delivery_age_seconds") > 0

    run_worker(settings, redis_conn)

    after = scrape(client)
    assert value(after, "trackrecord_deliveries", status="processed") == 3
    assert value(after, "trackrecord_deliveries", status="queued") == 0
    assert value(after, "trackrecord_oldest_pending_delivery_age_seconds") == 0
    queue = settings.queue_name
    assert value(after, "trackrecord_queue_jobs", queue=queue, state="queued") == 0
    # A worker may apply several deliveries in one job (workers.jobs batches them): at least
    # one job finished, and every finished job is in the duration sample, by its function.
    finished = value(after, "trackrecord_queue_jobs", queue=queue, state="finished")
    assert finished >= 1
    assert value(after, "trackrecord_queue_jobs", queue=queue, state="failed") == 0
    sampled = sum(
        v
        for (n, labels), v in after.items()
        if n == "trackrecord_job_duration_sample_jobs" and ("outcome", "finished") in labels
    )
    assert sampled == finished
    sample = value(
        after,
        "trackrecord_job_duration_sample_jobs",
        function="process_delivery",
        outcome="finished",
    )
    assert sample >= 1
    slowest = value(
        after,
        "trackrecord_job_duration_seconds",
        function="process_delivery",
        outcome="finished",
        quantile="1",
    )
    median = value(
        after,
        "trackrecord_job_duration_seconds",
        function="process_delivery",
        outcome="finished",
        quantile="0.5",
    )
    assert 0 < median <= slowest < 60
    # The counters are the same after the scrape: reading them does not add to them.
    assert received(after, "issues", "queued") == 2


def test_a_failed_delivery_shows_as_failed(client, settings, redis_conn):
    # A body whose shape the connector cannot read is a verdict: the row is marked failed.
    doc = json.loads(fixture_bytes("github/issues.opened.json"))
    doc["issue"] = "not an object"
    body = json.dumps(doc).encode()
    resp = client.post("/webhooks/github", data=body, headers=github_headers("issues", body))
    resp.close()
    assert resp.status_code == 202
    run_worker(settings, redis_conn)
    samples = scrape(client)
    assert value(samples, "trackrecord_deliveries", status="failed") == 1
    labels = dict(source="github", event="issues", status="failed")
    assert value(samples, "trackrecord_deliveries_unprocessed", **labels) == 1


def test_a_token_is_required_when_configured(client, monkeypatch):
    assert client.get("/metrics").status_code == 200  # open by default
    monkeypatch.setenv("TRACKRECORD_METRICS_TOKEN", TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        resp = client.get("/metrics", headers=headers)
        assert resp.status_code == 401
        assert resp.json["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in resp.get_data(as_text=True)
    samples = scrape(client, Authorization=f"Bearer {TOKEN}")
    assert value(samples, "trackrecord_up", part="database") == 1


def test_a_part_that_does_not_answer_shows_as_down(env, monkeypatch):
    from trackrecord.config import Settings
    from webhook_app import create_app

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    client = create_app(Settings.from_env()).test_client()
    samples = scrape(client)
    assert value(samples, "trackrecord_up", part="redis") == 0
    assert value(samples, "trackrecord_up", part="database") == 1
    assert ("trackrecord_deliveries", (("status", "pending"),)) in samples


def test_log_lines_are_json_name_the_job_and_hold_no_secret(client, settings, redis_conn, capfd):
    configure(json=True)
    body = fixture_bytes("github/issues.closed.json")
    headers = github_headers("issues", body, delivery="log-delivery-1")
    headers["Authorization"] = "Bearer a-caller-token-never-logged"
    resp = client.post("/webhooks/github", data=body, headers=headers)
    resp.close()
    assert resp.status_code == 202
    bad = client.post(
        "/webhooks/github",
        data=body,
        headers={
            **headers,
            "X-GitHub-Delivery": "log-delivery-2",
            "X-Hub-Signature-256": sign("wrong-secret", body),
        },
    )
    assert bad.status_code == 401
    run_worker(settings, redis_conn)

    from trackrecord.logs import get_logger

    get_logger("test").info(
        "probe", headers={"X-Hub-Signature-256": headers["X-Hub-Signature-256"]}
    )
    err = capfd.readouterr().err
    for secret in (GITHUB_SECRET, headers["X-Hub-Signature-256"], "a-caller-token-never-logged"):
        assert secret not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    assert events["webhook.queued"]["delivery"] == "log-delivery-1"
    assert events["github.webhook.bad_signature"]["delivery"] == "log-delivery-2"
    processed = events["delivery.processed"]
    assert processed["job"] == f"delivery-{processed['row']}"
    assert "job" not in events["webhook.queued"]  # the web request runs no job
    assert events["probe"]["headers"]["X-Hub-Signature-256"] == REDACTED


@pytest.fixture(autouse=True)
def _plain_logs_after():
    yield
    configure()
