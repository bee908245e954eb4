"""Every bad request gets its own status and JSON error, and stores nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tests.helpers import fixture_bytes, github_headers, jira_headers
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from webhook_app import create_app
from webhook_app.signatures import sign

BODY = fixture_bytes("github/issues.opened.json")
JIRA_BODY = fixture_bytes("jira/jira.issue_created.json")


def stored(settings) -> int:
    with session_factory(settings.database_url)() as s:
        return s.scalar(select(func.count()).select_from(Delivery))


def without(headers: dict, name: str) -> dict:
    return {k: v for k, v in headers.items() if k != name}


GITHUB_CASES = {
    "missing signature": (
        lambda: (BODY, without(github_headers("issues", BODY), "X-Hub-Signature-256")),
        401,
        "missing_signature",
    ),
    "wrong signature": (
        lambda: (BODY, github_headers("issues", BODY, secret="not the secret")),
        401,
        "bad_signature",
    ),
    "body changed after signing": (
        lambda: (BODY + b" ", github_headers("issues", BODY)),
        401,
        "bad_signature",
    ),
    "missing event header": (
        lambda: (BODY, without(github_headers("issues", BODY), "X-GitHub-Event")),
        400,
        "missing_header",
    ),
    "missing delivery header": (
        lambda: (BODY, without(github_headers("issues", BODY), "X-GitHub-Delivery")),
        400,
        "missing_header",
    ),
    "malformed json": (
        lambda: (b'{"action": "opened",', github_headers("issues", b'{"action": "opened",')),
        400,
        "malformed_json",
    ),
    "json that is not an object": (
        lambda: (b"[1, 2]", github_headers("issues", b"[1, 2]")),
        400,
        "malformed_json",
    ),
    "unknown event": (
        lambda: (BODY, github_headers("deployment_status", BODY)),
        400,
        "unsupported_event",
    ),
    "wrong content type": (
        lambda: (BODY, {**github_headers("issues", BODY), "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    ),
    "no content type": (
        lambda: (BODY, without(github_headers("issues", BODY), "Content-Type")),
        415,
        "unsupported_media_type",
    ),
    "form body without payload field": (
        lambda: (
            b"other=1",
            {
                **github_headers("issues", b"other=1"),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ),
        400,
        "malformed_form",
    ),
    "empty body": (lambda: (b"", github_headers("issues", b"")), 400, "empty_body"),
}


@pytest.mark.parametrize("case", sorted(GITHUB_CASES))
def test_github_bad_input(client, settings, case):
    make, status, code = GITHUB_CASES[case]
    body, headers = make()
    resp = client.post("/webhooks/github", data=body, headers=headers)
    assert resp.status_code == status, resp.json
    assert resp.is_json
    assert resp.json["error"] == code
    assert resp.json["message"]
    assert stored(settings) == 0


JIRA_CASES = {
    "missing signature": (
        lambda: (JIRA_BODY, without(jira_headers(JIRA_BODY), "X-Hub-Signature")),
        401,
        "missing_signature",
    ),
    "wrong signature": (
        lambda: (JIRA_BODY, jira_headers(JIRA_BODY, secret="nope")),
        401,
        "bad_signature",
    ),
    "malformed json": (lambda: (b"{nope", jira_headers(b"{nope")), 400, "malformed_json"),
    "no webhookEvent": (lambda: (b'{"a": 1}', jira_headers(b'{"a": 1}')), 400, "missing_event"),
    "unknown webhookEvent": (
        lambda: (
            b'{"webhookEvent": "board_created"}',
            jira_headers(b'{"webhookEvent": "board_created"}'),
        ),
        400,
        "unsupported_event",
    ),
    "form encoding (Jira never sends it)": (
        lambda: (
            JIRA_BODY,
            {**jira_headers(JIRA_BODY), "Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
        "unsupported_media_type",
    ),
}


@pytest.mark.parametrize("case", sorted(JIRA_CASES))
def test_jira_bad_input(client, settings, case):
    make, status, code = JIRA_CASES[case]
    body, headers = make()
    resp = client.post("/webhooks/jira", data=body, headers=headers)
    assert resp.status_code == status, resp.json
    assert resp.json["error"] == code
    assert stored(settings) == 0


def test_oversized_body_is_refused_from_its_length(settings):
    small = create_app(settings.__class__(**{**settings.__dict__, "max_body_bytes": 1000}))
    body = json.dumps({"action": "opened", "pad": "x" * 2000}).encode()
    resp = small.test_client().post(
        "/webhooks/github", data=body, headers=github_headers("issues", body)
    )
    assert resp.status_code == 413
    assert resp.json["error"] == "payload_too_large"
    assert stored(settings) == 0


def test_default_cap_is_githubs_25_mib(client, settings):
    body = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    resp = client.post("/webhooks/github", data=body, headers=github_headers("issues", body))
    assert resp.status_code == 413
    assert stored(settings) == 0


def test_missing_secret_refuses_rather_than_accepting_unsigned(client, settings, monkeypatch):
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET")
    # Every GitHub secret unset (a source's own one too): with any left, the request is
    # checked against it before its body is read, and fails as bad_signature.
    monkeypatch.delenv("OWN_HOOK_SECRET")
    resp = client.post("/webhooks/github", data=BODY, headers=github_headers("issues", BODY))
    assert (resp.status_code, resp.json["error"]) == (401, "no_secret")
    monkeypatch.delenv("JIRA_WEBHOOK_SECRET")
    resp = client.post("/webhooks/jira", data=JIRA_BODY, headers=jira_headers(JIRA_BODY))
    assert (resp.status_code, resp.json["error"]) == (401, "no_secret")
    assert stored(settings) == 0


def test_unsigned_jira_is_accepted_only_when_allowed(settings, monkeypatch):
    monkeypatch.delenv("JIRA_WEBHOOK_SECRET")
    monkeypatch.setenv("TRACKRECORD_JIRA_ALLOW_UNSIGNED", "1")
    app = create_app()
    headers = without(jira_headers(JIRA_BODY), "X-Hub-Signature")
    resp = app.test_client().post("/webhooks/jira", data=JIRA_BODY, headers=headers)
    assert resp.status_code == 202
    assert stored(settings) == 1


def test_unknown_route_and_method_answer_json(client):
    assert client.get("/webhooks/github").status_code == 405
    resp = client.post("/webhooks/gitlab", data=b"{}")
    assert resp.status_code == 404 and resp.json["error"] == "not_found"


def test_secret_never_reaches_the_logs(client, settings, capsys):
    body = BODY
    client.post("/webhooks/github", data=body, headers=github_headers("issues", body, secret="x"))
    client.post("/webhooks/github", data=body, headers=github_headers("issues", body))
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "bad_signature" in logged  # the rejection was logged...
    assert "test-github-secret" not in logged  # ...without the secret
    assert sign("test-github-secret", body).split("=")[1] not in logged
