"""POST /webhooks/github: verify, store, enqueue. No GitHub API call happens here."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from connectors.github.normalize import ROUTING
from connectors.routing import Decision
from webhook_app import intake, signatures
from webhook_app.errors import Rejected
from webhook_app.intake import Incoming

bp = Blueprint("github", __name__)

CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")


def _repo_name(doc: dict) -> str | None:
    repo = doc.get("repository")
    if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
        return repo["full_name"]
    return None


def shown(name: str | None) -> str:
    """A name from the body, as an answer quotes it: bounded, whatever the sender put there."""
    text = repr(name)
    return text if len(text) <= 120 else text[:117] + "..."


@bp.post("/webhooks/github")
def receive():
    svc = intake.services()
    settings = svc.settings
    body = intake.read_body(settings.max_body_bytes)
    mimetype = intake.require_content_type(CONTENT_TYPES)
    event = intake.require_header("X-GitHub-Event")
    delivery_id = intake.require_header("X-GitHub-Delivery")
    # The signature first, over the raw bytes, against every configured GitHub secret: nothing
    # parses an unverified body. The secret that signed it says which repositories it may
    # speak for.
    verified = signatures.verify_request(
        "github",
        settings.config,
        body,
        request.headers.get("X-Hub-Signature-256"),
        header_name="X-Hub-Signature-256",
        delivery=delivery_id,
    )
    doc = intake.json_document(body, mimetype)
    if event == "ping":
        return jsonify(delivery=delivery_id, status="pong"), 200
    # The connector's routing table decides, the same one the worker reads. An unsupported
    # event is refused with 400 so that a hook set to "send me everything" shows the mismatch in
    # GitHub's delivery log instead of silently piling up.
    action = doc.get("action") if isinstance(doc.get("action"), str) else None
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
    repo = _repo_name(doc)
    source = settings.config.source("github", repo) if repo else None
    if source is None:
        return intake.ignored(delivery_id, f"repository {shown(repo)} is not listed by any team")
    # A repository signed for with another repository's secret is not verified.
    signatures.require_covered(verified, source, delivery=delivery_id)
    return intake.accept(
        Incoming(
            "github",
            delivery_id,
            event,
            action,
            source.key,
            source.team,
            body,
            verified_sources=(source.key,),
        )
    )
