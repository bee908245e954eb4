"""POST /webhooks/jira: the same contract as GitHub's route, in Jira's dialect.

Jira names the event in the body (`webhookEvent`), identifies a delivery with
X-Atlassian-Webhook-Identifier (the same value on its retries; Jira retries failed deliveries
by itself and says so in X-Atlassian-Webhook-Retry) and, when a secret is set on the webhook,
signs with X-Hub-Signature: sha256=<hex>.
https://developer.atlassian.com/cloud/jira/platform/webhooks/
Served by webhook_app.front, as GitHub's route.
"""

from __future__ import annotations

import hashlib

from connectors.jira.normalize import ROUTING
from connectors.routing import Decision
from webhook_app import intake, intake_store, signatures
from webhook_app.errors import Rejected
from webhook_app.github import shown
from webhook_app.intake import Incoming

# Sprints and versions carry board or numeric ids, not project keys: they are kept for the Jira
# projects the signature verifies (those using the same secret), and the worker reaches only
# their items.
SITE_WIDE_PREFIXES = ("sprint_", "jira:version_")


def project_of(doc: dict) -> str | None:
    """The project an issue payload names: `fields.project.key`, which must be the prefix of
    `issue.key` (the item the ledger writes). A payload whose two disagree names two projects
    and is refused: one would choose the secret, the other the item."""
    issue = doc.get("issue")
    if not isinstance(issue, dict):
        return None
    fields = issue.get("fields")
    project = fields.get("project") if isinstance(fields, dict) else None
    named = project.get("key") if isinstance(project, dict) else None
    named = named if isinstance(named, str) and named else None
    key = issue.get("key")
    prefix = key.rsplit("-", 1)[0] if isinstance(key, str) and "-" in key else None
    if named is not None and prefix is not None and named.upper() != prefix.upper():
        raise Rejected(
            400,
            "project_mismatch",
            f"issue {shown(key)} is not in project {shown(named)} (fields.project.key)",
        )
    return named or prefix


def receive(call) -> tuple[int, dict]:
    request, svc = call.request, call.svc
    settings = svc.settings
    body = intake.read_body(request, settings.max_body_bytes)
    mimetype = intake.require_content_type(request, ("application/json",))
    # Jira Server/DC sends no identifier; the body (with its timestamp) then stands for it.
    delivery_id = request.headers.get("X-Atlassian-Webhook-Identifier", "").strip()
    if not delivery_id:
        delivery_id = "sha256-" + hashlib.sha256(body).hexdigest()

    # The signature first, over the raw bytes, against every configured Jira secret: nothing
    # parses an unverified body. The secret that signed it says which projects it may speak for.
    verified = signatures.verify_request(
        "jira",
        settings.config,
        body,
        request.headers.get("X-Hub-Signature"),
        header_name="X-Hub-Signature",
        delivery=delivery_id,
        allow_unsigned=settings.jira_allow_unsigned,
    )

    doc = intake.json_document(body, mimetype)
    event = doc.get("webhookEvent")
    if not isinstance(event, str) or not event:
        raise Rejected(400, "missing_event", "body has no 'webhookEvent'")
    call.event = event  # for /metrics (webhook_app/metrics.py), which bounds the label
    action = doc.get("issue_event_type_name")
    action = action if isinstance(action, str) else None
    # The connector's routing table decides, the same one the worker reads.
    decision = ROUTING.decide(event, action)
    if decision is Decision.UNSUPPORTED:
        raise Rejected(
            400,
            "unsupported_event",
            f"event {shown(event)} is not handled",
            supported=sorted(ROUTING.known),
        )
    if decision is Decision.IGNORE:
        return intake.ignored(delivery_id, f"event {shown(event)} carries nothing for the ledger")

    if event.startswith(SITE_WIDE_PREFIXES):
        # No project named: the delivery may reach the items of the projects its secret
        # verifies, and no others (recorded on the row for the worker).
        if not verified.sources:
            reason = "no listed Jira project uses the secret that signed it"
            return intake.ignored(delivery_id, reason)
        key, team, reach = None, None, tuple(verified.keys())
    else:
        project = project_of(doc)
        source = settings.config.source("jira", project) if project else None
        if source is None:
            return intake.ignored(
                delivery_id, f"Jira project {shown(project)} is not listed by any team"
            )
        signatures.require_covered(verified, source, delivery=delivery_id)
        key, team, reach = source.key, source.team, (source.key,)
    incoming = Incoming("jira", delivery_id, event, action, key, team, body, verified_sources=reach)
    return intake_store.accept(svc, request, incoming, call)
