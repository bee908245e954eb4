"""Reconciliation asks a (local stand-in for the) GitHub API, through the real PyGithub client,
to redeliver exactly the deliveries that failed and never arrived."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from werkzeug import Response

from cli.main import main as cli
from tests.helpers import fixture_bytes, github_headers

HOOK = 4242
REPO = "Codertocat/Hello-World"
BASE = f"/repos/{REPO}/hooks/{HOOK}/deliveries"


def summary(id_, guid, code, event="issues", at="2099-01-01T10:00:00Z"):
    return {
        "id": id_,
        "guid": guid,
        "delivered_at": at,
        "redelivery": False,
        "duration": 0.3,
        "status": "OK" if code < 300 else "Invalid HTTP Response: 502",
        "status_code": code,
        "event": event,
        "action": "opened",
        "installation_id": None,
        "repository_id": 1,
    }


@pytest.fixture
def hooked_config(config_path, monkeypatch, httpserver):
    text = config_path.read_text().replace(
        'github = ["Codertocat/Hello-World", "Pritesh-30/test-repo"]',
        f'github = [{{ repo = "{REPO}", hook_id = {HOOK} }}, "Pritesh-30/test-repo"]',
    )
    config_path.write_text(text)
    monkeypatch.setenv("GITHUB_API_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_test_token_value")
    return config_path


def test_failed_deliveries_are_redelivered_once(env, hooked_config, client, httpserver, capsys):
    # One delivery already reached us (stored) even though GitHub logged a failure for it.
    body = fixture_bytes("github/issues.opened.json")
    client.post("/webhooks/github", data=body, headers=github_headers("issues", body, "guid-E"))

    page = [
        summary(7, "guid-C", 200),  # newest first: C was redelivered by hand and succeeded
        summary(6, "guid-A", 502),  # failed -> redeliver
        summary(5, "guid-C", 502),
        summary(4, "guid-D", 500, event="push"),  # an event we do not handle -> leave it
        summary(3, "guid-E", 502),  # we have it -> leave it
        summary(8, "guid-G", 401),  # refused (bad signature): a verdict, not a fault -> leave it
        summary(9, "guid-H", 0),  # no answer at all (a timeout) -> redeliver
        summary(2, "guid-B", 200),
        summary(1, "guid-F", 502, at="2000-01-01T00:00:00Z"),  # older than the lookback
    ]
    # GitHub answers 500 once, then the page: the client's retry rides over it.
    httpserver.expect_ordered_request(BASE, method="GET").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(BASE, method="GET").respond_with_json(page)
    # The redelivery request is rate limited once (429 + Retry-After), then accepted.
    httpserver.expect_ordered_request(f"{BASE}/6/attempts", method="POST").respond_with_response(
        Response(
            json.dumps({"message": "slow down"}),
            status=429,
            headers={"Retry-After": "1"},
            content_type="application/json",
        )
    )
    httpserver.expect_ordered_request(f"{BASE}/6/attempts", method="POST").respond_with_json(
        {}, status=202
    )
    httpserver.expect_ordered_request(f"{BASE}/9/attempts", method="POST").respond_with_json(
        {}, status=202
    )

    result = CliRunner().invoke(cli, ["reconcile"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.output.strip().splitlines()[-1])
    # A, E and H failed by a fault and never succeeded; E was stored here, so A and H are
    # redelivered. G was refused with a 401, which another try would only repeat.
    assert {k: results[REPO][k] for k in ("redelivered", "failed_seen")} == {
        "redelivered": 2,
        "failed_seen": 3,
    }
    # Every configured source is visited; none was backfilled, so none is re-read.
    assert set(results) == {
        REPO,
        "Pritesh-30/test-repo",
        "TES",
        "robvanderleek/create-issue-branch",
        "acme-corp/own-secret",
        "KT",
    }
    assert results["TES"]["resync"].startswith("not backfilled yet")
    httpserver.check_assertions()
    posts = [r for r, _ in httpserver.log if r.method == "POST"]
    assert [p.path for p in posts] == [f"{BASE}/6/attempts"] * 2 + [f"{BASE}/9/attempts"]
    assert all(p.headers["Authorization"] == "token ghp_test_token_value" for p in posts)
    logged = capsys.readouterr()
    assert "ghp_test_token_value" not in logged.out + logged.err


def test_second_run_looks_back_only_to_the_last_good_sync(env, hooked_config, httpserver):
    httpserver.expect_request(BASE, method="GET").respond_with_json([])
    first = CliRunner().invoke(cli, ["reconcile", REPO])
    result = json.loads(first.output.strip().splitlines()[-1])
    assert (result["redelivered"], result["failed_seen"]) == (0, 0)
    # A failure stamped before the last run was seen by it already and is not redelivered twice.
    httpserver.clear()
    httpserver.expect_request(BASE, method="GET").respond_with_json(
        [summary(9, "guid-old", 502, at="2001-01-01T00:00:00Z")]
    )
    second = CliRunner().invoke(cli, ["reconcile", REPO])
    assert json.loads(second.output.strip().splitlines()[-1])["redelivered"] == 0
    assert not [r for r, _ in httpserver.log if r.method == "POST"]


def test_without_credentials_reconcile_says_what_is_missing(env, hooked_config, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    result = CliRunner().invoke(cli, ["reconcile"])
    assert "set GITHUB_TOKEN" in result.output


def test_github_app_authenticates_as_its_installation(
    env, hooked_config, httpserver, tmp_path, monkeypatch
):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "app.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("GITHUB_APP_ID", "31337")
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", str(pem))
    installation = {"id": 77, "app_id": 31337, "account": {"login": "Codertocat"}}
    httpserver.expect_request(f"/repos/{REPO}/installation").respond_with_json(installation)
    httpserver.expect_request(
        "/app/installations/77/access_tokens", method="POST"
    ).respond_with_json(
        {"token": "ghs_installation_token", "expires_at": "2099-01-01T00:00:00Z"}, status=201
    )
    httpserver.expect_request(BASE, method="GET").respond_with_json([])

    result = CliRunner().invoke(cli, ["reconcile", REPO])
    assert result.exit_code == 0, result.output
    by_path = {r.path: r for r, _ in httpserver.log}
    # The app proves itself with a JWT signed by its private key...
    app_jwt = by_path[f"/repos/{REPO}/installation"].headers["Authorization"].split()[1]
    claims = jwt.decode(app_jwt, key.public_key(), algorithms=["RS256"])
    assert str(claims["iss"]) == "31337"
    # ...and then acts with the installation's token, never with the JWT.
    assert by_path[BASE].headers["Authorization"] == "token ghs_installation_token"
    assert "ghs_installation_token" not in result.output


def test_one_broken_source_does_not_stop_the_others(env, hooked_config, httpserver, monkeypatch):
    # The hook id is wrong: GitHub answers 404. Reconciliation records it and goes on.
    httpserver.expect_request(BASE, method="GET").respond_with_json({"message": "Not Found"}, 404)
    result = CliRunner().invoke(cli, ["reconcile"])
    # The failure is one line with GitHub's answer, and the exit says something failed.
    assert result.exit_code == 1, result.output
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results[REPO]["error"].endswith("answered 404: Not Found")
    assert results["TES"]["resync"].startswith("not backfilled yet")  # visited after it
