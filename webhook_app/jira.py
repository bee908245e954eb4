"""POST /webhooks/jira: the same contract as GitHub's route, in Jira's dialect.

Jira names the event in the body (`webhookEvent`), identifies a delivery with
X-Atlassian-Webhook-Identifier (the same value on its retries; Jira retries failed deliveries
by itself and says so in X-Atlassian-Webhook-Retry) and, when a secret is set on the webhook,
signs with X-Hub-Signature: sha256=<hex>.
https://developer.atlassian.com/cloud/jira/platform/webhooks/
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, request

from trackrecord.config import secret_for
from webhook_app import intake, signatures
from webhook_app.intake import Incoming, Rejected

bp = Blueprint("jira", __name__)

SUPPORTED_EVENTS = frozenset(
    {
        "jira:issue_created",
        "jira:issue_updated",
        "jira:issue_deleted",
        "comment_created",
        "sprint_created",
        "sprint_started",
        "sprint_updated",
        "sprint_closed",
        "jira:version_created",
        "jira:version_updated",
        "jira:version_released",
        "jira:version_unreleased",
    }
)
# Sprints and versions carry board or numeric project ids, not project keys: they are kept
# for every team with Jira sources and resolved by the worker.
SITE_WIDE_PREFIXES = ("sprint_", "jira:version_")


def _project_key(doc: dict) -> str | None:
    issue = doc.get("issue")
    if not isinstance(issue, dict):
        return None
    project = (issue.get("fields") or {}).get("project")
    if isinstance(project, dict) and isinstance(project.get("key"), str):
        return project["key"]
    key = issue.get("key")
    if isinstance(key, str) and "-" in key:
        return key.rsplit("-", 1)[0]
    return None


@bp.post("/webhooks/jira")
def receive():
    svc = intake.services()
    settings = svc.settings
    body = intake.read_body(settings.max_body_bytes)
    mimetype = intake.require_content_type(("application/json",))
    # Jira Server/DC sends no identifier; the body (with its timestamp) then stands for it.
    delivery_id = request.headers.get("X-Atlassian-Webhook-Identifier", "").strip()
    if not delivery_id:
        delivery_id = "sha256-" + hashlib.sha256(body).hexdigest()

    peeked = intake.json_document(body, mimetype, strict=False)
    source = settings.config.source("jira", _project_key(peeked) or "")
    secret = secret_for("jira", source)
    signature = request.headers.get("X-Hub-Signature")
    if secret is not None:
        if not signature:
            raise Rejected(401, "missing_signature", "header X-Hub-Signature is required")
        if not signatures.verify(secret, body, signature):
            intake.log.warning("jira.webhook.bad_signature", delivery=delivery_id)
            raise Rejected(401, "bad_signature", "X-Hub-Signature does not match the body")
    elif not settings.jira_allow_unsigned:
        raise Rejected(
            401,
            "no_secret",
            "no webhook secret is configured (JIRA_WEBHOOK_SECRET); set one, or set "
            "TRACKRECORD_JIRA_ALLOW_UNSIGNED=1 for a Jira that cannot sign",
        )

    doc = peeked or intake.json_document(body, mimetype)
    event = doc.get("webhookEvent")
    if not isinstance(event, str) or not event:
        raise Rejected(400, "missing_event", "body has no 'webhookEvent'")
    if event not in SUPPORTED_EVENTS:
        raise Rejected(
            400,
            "unsupported_event",
            f"event {event!r} is not handled",
            supported=sorted(SUPPORTED_EVENTS),
        )
    action = doc.get("issue_event_type_name")
    action = action if isinstance(action, str) else None

    if event.startswith(SITE_WIDE_PREFIXES):
        if not settings.config.sources("jira"):
            return intake.ignored(delivery_id, "no team lists a Jira project")
        return intake.accept(Incoming("jira", delivery_id, event, action, None, None, body))
    project = _project_key(doc)
    if source is None:
        return intake.ignored(delivery_id, f"Jira project {project!r} is not listed by any team")
    return intake.accept(
        Incoming("jira", delivery_id, event, action, source.key, source.team, body)
    )
