"""GET /metrics in the Prometheus text format, and the count of every webhook's outcome.

The figures are read at scrape time (workers.observe): stored deliveries, comments and report
sends from the database, queues and workers from Redis. What the database never sees (a
duplicate, an ignored or a rejected request) is counted in Redis once its answer is sent, so
every gunicorn process adds to the same counter; a queued one is counted in the round trip that
enqueues its job. Open by default, for a scraper on the
internal network; with TRACKRECORD_METRICS_TOKEN set, a scrape must bring it as a bearer token.
"""

from __future__ import annotations

import hmac
import os
import re
from datetime import UTC, datetime

from flask import Blueprint, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from connectors.github.normalize import ROUTING as GITHUB_ROUTING
from connectors.jira.normalize import ROUTING as JIRA_ROUTING
from trackrecord.logs import get_logger
from webhook_app.services import Services, services
from workers import observe

log = get_logger("webhook_app.metrics")
bp = Blueprint("metrics", __name__)

# Label values from closed sets only: a sender choosing its own event names or error text must
# not grow the counter hash (or the scrape) without bound.
_KNOWN_EVENTS = {
    "github": GITHUB_ROUTING.known | {"ping"},
    "jira": JIRA_ROUTING.known,
}
_CODE = re.compile(r"[a-z_]{1,40}")
# The answer's `status` (2xx) names the outcome; any other answer is a refusal or a fault.
_OUTCOMES = {"queued": "queued", "duplicate": "duplicate", "ignored": "ignored", "pong": "ping"}


def _event_label(source: str) -> str:
    # Jira names its event in the body; the route may leave it in `g` once it has read it.
    event = g.get("webhook_event")
    if event is None and source == "github":
        event = request.headers.get("X-GitHub-Event")
    if not event:
        return "unknown"
    return event if event in _KNOWN_EVENTS[source] else "other"


def _outcome(response) -> tuple[str, str] | None:
    body = response.get_json(silent=True) if response.is_json else None
    body = body if isinstance(body, dict) else {}
    if response.status_code < 300:
        status = body.get("status")
        # `pending` (202) means Redis just failed the enqueue: counting in it would fail too.
        return None if status == "pending" else (_OUTCOMES.get(status, "other"), "")
    code = body.get("error")
    reason = code if isinstance(code, str) and _CODE.fullmatch(code) else "other"
    return ("rejected" if response.status_code < 500 else "failed"), reason


def count_queued(pipeline, source: str) -> None:
    """Count a webhook answered `queued` on the pipeline that enqueues its job (one round trip
    for both), and tell count_webhook that this request is counted."""
    observe.count_received(pipeline, source, _event_label(source), "queued")
    g.webhook_counted = True


@bp.after_app_request
def count_webhook(response):
    source = request.blueprint
    if source not in _KNOWN_EVENTS or request.url_rule is None or g.get("webhook_counted"):
        return response
    outcome = _outcome(response)
    if outcome is None:
        return response
    labels = (source, _event_label(source), *outcome)
    svc = services()

    def count() -> None:  # after the answer went out: the sender does not wait on it
        try:
            observe.count_received(svc.redis(), *labels)
        except (RedisError, OSError) as exc:
            log.warning("metrics.count_failed", error=type(exc).__name__)

    response.call_on_close(count)
    return response


def _authorized(svc: Services) -> bool:
    token = os.environ.get(svc.settings.metrics_token_env)
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


@bp.get("/metrics")
def metrics():
    svc = services()
    if not _authorized(svc):
        response = jsonify(error="unauthorized", message="a valid bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response, 401
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReadingsCollector(svc))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class ReadingsCollector(Collector):
    """The figures of one scrape. A part that does not answer shows as trackrecord_up 0 and its
    figures are left out; the scrape itself still succeeds."""

    def __init__(self, svc: Services):
        self.svc = svc

    def collect(self):
        up = GaugeMetricFamily("trackrecord_up", "Whether the part answered", labels=["part"])
        try:
            with self.svc.sessions() as session:
                db = observe.read_database(session)
        except SQLAlchemyError as exc:
            log.warning("metrics.database_unavailable", error=type(exc).__name__)
            db = None
        try:
            rd = observe.read_redis(self.svc.redis(), (self.svc.settings.queue_name,))
        except (RedisError, OSError) as exc:
            log.warning("metrics.redis_unavailable", error=type(exc).__name__)
            rd = None
        up.add_metric(["database"], int(db is not None))
        up.add_metric(["redis"], int(rd is not None))
        yield up
        if db is not None:
            yield from _database_families(db)
        if rd is not None:
            yield from _redis_families(rd)


def _database_families(db: observe.DatabaseReading):
    by_status = GaugeMetricFamily(
        "trackrecord_deliveries", "Stored deliveries by status", labels=["status"]
    )
    for status, n in db.deliveries.items():
        by_status.add_metric([status], n)
    yield by_status
    backlog = GaugeMetricFamily(
        "trackrecord_deliveries_unprocessed",
        "Deliveries not processed (pending, queued, failed) by source and event",
        labels=["source", "event", "status"],
    )
    for (source, event, status), n in sorted(db.unprocessed.items()):
        backlog.add_metric([source, event, status], n)
    yield backlog
    age = 0.0
    if db.oldest_waiting is not None:
        age = max((datetime.now(UTC) - db.oldest_waiting).total_seconds(), 0.0)
    yield GaugeMetricFamily(
        "trackrecord_oldest_pending_delivery_age_seconds",
        "Age of the oldest delivery stored and not yet processed (0 when there is none)",
        value=age,
    )
    comments = GaugeMetricFamily(
        "trackrecord_comments", "Comments on settled items by status", labels=["status"]
    )
    for status, n in sorted(db.comments.items()):
        comments.add_metric([status], n)
    yield comments
    if db.report_sends is not None:
        reports = GaugeMetricFamily(
            "trackrecord_report_sends", "Report sends by status", labels=["status"]
        )
        for status, n in sorted(db.report_sends.items()):
            reports.add_metric([status], n)
        yield reports


def _redis_families(rd: observe.RedisReading):
    received = CounterMetricFamily(
        "trackrecord_deliveries_received",
        "Webhook requests answered, by source, event, outcome and refusal reason",
        labels=["source", "event", "outcome", "reason"],
    )
    for labels, n in sorted(rd.received.items()):
        received.add_metric(list(labels), n)
    yield received
    jobs = GaugeMetricFamily(
        "trackrecord_queue_jobs", "RQ jobs by state", labels=["queue", "state"]
    )
    for queue, states in rd.queues.items():
        for state, n in states.items():
            jobs.add_metric([queue, state], n)
    yield jobs
    workers = GaugeMetricFamily("trackrecord_workers", "RQ workers", labels=["state"])
    workers.add_metric(["alive"], rd.workers_alive)
    workers.add_metric(["stale"], rd.workers_stale)
    yield workers
    durations = GaugeMetricFamily(
        "trackrecord_job_duration_seconds",
        f"Job run time over the latest {observe.DURATION_SAMPLE} finished or failed jobs",
        labels=["function", "outcome", "quantile"],
    )
    sampled = GaugeMetricFamily(
        "trackrecord_job_duration_sample_jobs",
        "Jobs behind trackrecord_job_duration_seconds",
        labels=["function", "outcome"],
    )
    for (function, outcome), sample in sorted(rd.durations.items()):
        for quantile, seconds in sample.quantiles().items():
            durations.add_metric([function, outcome, quantile], seconds)
        sampled.add_metric([function, outcome], len(sample.seconds))
    yield durations
    yield sampled
