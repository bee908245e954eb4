"""GET /metrics in the Prometheus text format, and the count of every webhook's outcome.

The figures are read at scrape time (workers.observe): stored deliveries, comments and report
sends from the database, queues and workers from Redis. What the database never sees (a
duplicate, an ignored or a rejected request) is counted in Redis once its answer is sent
(webhook_app.front), so every gunicorn process adds to the same counter; a queued one is counted
in the command that enqueues its job. Open by default, for a scraper on the
internal network; with TRACKRECORD_METRICS_TOKEN set, a scrape must bring it as a bearer token.
"""

from __future__ import annotations

import hmac
import os
import re
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
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


def event_label(source: str, event: str | None) -> str:
    """The event's label: a known one, `other`, or `unknown` before the request names one."""
    if not event:
        return "unknown"
    return event if event in _KNOWN_EVENTS[source] else "other"


def webhook_labels(source: str, event: str | None, status: int, body: dict):
    """The labels a webhook's answer is counted under (webhook_app.front counts it), or None
    for `pending` (202): Redis just failed the enqueue, so counting in it would fail too."""
    if status < 300:
        outcome = body.get("status")
        if outcome == "pending":
            return None
        return source, event_label(source, event), _OUTCOMES.get(outcome, "other"), ""
    code = body.get("error")
    reason = code if isinstance(code, str) and _CODE.fullmatch(code) else "other"
    return source, event_label(source, event), "rejected" if status < 500 else "failed", reason


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
