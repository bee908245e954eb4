"""POST /webhooks/github: verify, store, enqueue. No GitHub API call happens here.

Served by webhook_app.front: `receive` gets the request and answers a status and a JSON body.
"""

from __future__ import annotations

from connectors.github.normalize import ROUTING
from connectors.routing import Decision
from webhook_app import intake, intake_store, signatures
from webhook_app.errors import Rejected
from webhook_app.intake import Incoming

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


def receive(call) -> tuple[int, dict]:
    request, svc = call.request, call.svc
    call.event = request.headers.get("X-GitHub-Event")  # for /metrics, whatever follows
    settings = svc.settings
    body = intake.read_body(request, settings.max_body_bytes)
    mimetype = intake.require_content_type(request, CONTENT_TYPES)
    event = intake.require_header(request, "X-GitHub-Event")
    delivery_id = intake.require_header(request, "X-GitHub-Delivery")
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
        return 200, {"delivery": delivery_id, "status": "pong"}
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
    return intake_store.accept(
        svc,
        request,
        Incoming(
            "github",
            delivery_id,
            event,
            action,
            source.key,
            source.team,
            body,
            verified_sources=(source.key,),
        ),
        call,
    )
