"""POST /webhooks/github: verify, store, enqueue. No GitHub API call happens here."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from trackrecord.config import secret_for
from webhook_app import intake, signatures
from webhook_app.intake import Incoming, Rejected

bp = Blueprint("github", __name__)

# The events the connectors read. Anything else is refused with 400 so that a hook set to
# "send me everything" shows the mismatch in GitHub's delivery log instead of silently piling up.
SUPPORTED_EVENTS = frozenset({"issues", "pull_request", "milestone", "issue_comment"})
CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")


def _repo_name(doc: dict) -> str | None:
    repo = doc.get("repository")
    if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
        return repo["full_name"]
    return None


@bp.post("/webhooks/github")
def receive():
    svc = intake.services()
    settings = svc.settings
    body = intake.read_body(settings.max_body_bytes)
    mimetype = intake.require_content_type(CONTENT_TYPES)
    event = intake.require_header("X-GitHub-Event")
    delivery_id = intake.require_header("X-GitHub-Delivery")
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature:
        raise Rejected(401, "missing_signature", "header X-Hub-Signature-256 is required")

    # Which secret applies depends on the repository, which is only known from the body.
    peeked = intake.json_document(body, mimetype, strict=False)
    source = settings.config.source("github", _repo_name(peeked) or "")
    secret = secret_for("github", source)
    if secret is None:
        raise Rejected(401, "no_secret", "no webhook secret is configured (GITHUB_WEBHOOK_SECRET)")
    if not signatures.verify(secret, body, signature):
        intake.log.warning("github.webhook.bad_signature", delivery=delivery_id)
        raise Rejected(401, "bad_signature", "X-Hub-Signature-256 does not match the body")

    # Parsed once already; the strict parse only runs to word the error for a bad body.
    doc = peeked or intake.json_document(body, mimetype)
    if event == "ping":
        return jsonify(delivery=delivery_id, status="pong"), 200
    if event not in SUPPORTED_EVENTS:
        raise Rejected(
            400,
            "unsupported_event",
            f"event {event!r} is not handled",
            supported=sorted(SUPPORTED_EVENTS | {"ping"}),
        )
    repo = _repo_name(doc)
    if source is None:
        return intake.ignored(delivery_id, f"repository {repo!r} is not listed by any team")
    action = doc.get("action") if isinstance(doc.get("action"), str) else None
    return intake.accept(
        Incoming("github", delivery_id, event, action, source.key, source.team, body)
    )
