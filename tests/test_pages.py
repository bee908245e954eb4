"""The pages (issue 12) through Flask's test client, on SQLite and PostgreSQL, with a ledger
seeded by signed webhooks and a real RQ worker: sign-in and its cookie, CSRF, bearer access,
what a client may see (everything else is the same 404), the figures the API gives, and a
failed delivery retried from the operator page."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from rq import Queue
from sqlalchemy import select

from ledger import exclusions
from tests import ledger_helpers as h
from tests.conftest import CONFIG_TOML
from tests.helpers import CLIENT_TOKEN
from trackrecord.config import Settings
from trackrecord.db import session_factory
from trackrecord.models import Delivery, DeliveryStatus
from webhook_app import create_app
from webhook_app.pages_data import period
from workers.enqueue import job_id

ADMIN_TOKEN = "pages-admin-token"
OTHER_TOKEN = "globex-client-token"
OTHER_CLIENT = """
[[clients]]
name = "globex"
timezone = "UTC"
token_env = "GLOBEX_API_TOKEN"

[[clients.teams]]
name = "ops"
timezone = "UTC"
github = ["globex/ops"]
"""
TODAY = datetime.now(UTC).date()
DUE = TODAY - timedelta(days=20)


def at(day, hour: int = 10) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


@pytest.fixture
def app(env, config_path, monkeypatch):
    config_path.write_text(CONFIG_TOML + OTHER_CLIENT)
    monkeypatch.setenv("GLOBEX_API_TOKEN", OTHER_TOKEN)
    monkeypatch.setenv("TRACKRECORD_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("TRACKRECORD_SECRET_KEY", "pages-test-secret-key")
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    monkeypatch.delenv("TRACKRECORD_PROXY_HOPS", raising=False)
    app = create_app(Settings.from_env())
    app.config["TESTING"] = True
    return app


@pytest.fixture
def seeded(app, client, redis_conn):
    """Platform: #1 delivered early, #2 late, #3 still open past its date (missed, then
    excluded with a reason); one delivery whose payload has the wrong shape (failed)."""
    settings = app.extensions["trackrecord"].settings
    for n in (1, 2, 3):
        h.post_github(client, *h.gh_issue("opened", at(DUE - timedelta(days=10)), number=n,
                                          due=DUE.isoformat()))  # fmt: skip
    h.post_github(client, *h.gh_issue("closed", at(DUE - timedelta(days=4)), number=1,
                                      due=DUE.isoformat()))  # fmt: skip
    h.post_github(client, *h.gh_issue("closed", at(DUE + timedelta(days=3)), number=2,
                                      due=DUE.isoformat()))  # fmt: skip
    event, doc = h.gh_issue("opened", at(TODAY), number=9)
    doc["issue"]["number"] = "nine"  # not a number: the worker marks the delivery failed
    h.post_github(client, event, doc)
    h.run_worker(settings, redis_conn)
    with session_factory(settings.database_url)() as session, session.begin():
        exclusions.exclude(session, f"{h.REPO}#3", "blocked on the client's API keys", "dana")
    return settings


def signin(client, token: str, next_path: str = ""):
    page = client.get("/signin").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    return client.post("/signin", data={"token": token, "csrf_token": csrf, "next": next_path})


def csrf_of(client, path: str = "/") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))[
        1
    ]


def text(resp) -> str:
    """The page as read: its words, without tags."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", resp.get_data(as_text=True))))


def test_without_a_session_pages_redirect_to_sign_in(client):
    resp = client.get("/teams/platform")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/signin?next=/teams/platform")
    assert client.get("/").headers["Location"].startswith("/signin")
    assert client.get("/operator").status_code == 302
    form = client.get("/signin")
    assert form.status_code == 200 and '<label for="token">' in form.get_data(as_text=True)


def test_sign_in_sets_a_safe_cookie_without_the_token(client):
    resp = signin(client, CLIENT_TOKEN, "/teams/platform")
    assert resp.status_code == 303 and resp.headers["Location"] == "/teams/platform"
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if "trackrecord_session" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP, no proxy configured
    value = cookie.split(";")[0]
    assert CLIENT_TOKEN not in value
    assert hashlib.sha256(CLIENT_TOKEN.encode()).hexdigest() not in value
    assert client.get("/").status_code == 200


def test_an_unknown_token_is_refused_and_next_stays_on_this_site(client):
    resp = signin(client, "not-a-token")
    assert resp.status_code == 401 and "not valid" in text(resp)
    assert client.get("/").status_code == 302
    resp = signin(client, CLIENT_TOKEN, "//evil.example/x")
    assert resp.headers["Location"] == "/"


def test_cookie_is_secure_over_https_and_behind_a_trusted_proxy_only(app, monkeypatch):
    https = app.test_client()
    csrf = csrf_of(https, "https://localhost/signin")
    resp = https.post("https://localhost/signin", data={"token": CLIENT_TOKEN, "csrf_token": csrf})
    assert "Secure" in resp.headers["Set-Cookie"]

    forwarded = {"X-Forwarded-Proto": "https"}
    plain = app.test_client()
    csrf = csrf_of(plain, "/signin")
    resp = plain.post("/signin", data={"token": CLIENT_TOKEN, "csrf_token": csrf},
                      headers=forwarded)  # fmt: skip
    assert "Secure" not in resp.headers["Set-Cookie"]  # a header anyone can send

    monkeypatch.setenv("TRACKRECORD_PROXY_HOPS", "1")
    proxied = create_app(Settings.from_env()).test_client()
    csrf = csrf_of(proxied, "/signin")
    resp = proxied.post("/signin", data={"token": CLIENT_TOKEN, "csrf_token": csrf},
                        headers=forwarded)  # fmt: skip
    assert "Secure" in resp.headers["Set-Cookie"]


def test_posts_without_the_csrf_token_are_rejected(client, seeded):
    assert client.post("/signin", data={"token": CLIENT_TOKEN}).status_code == 400
    assert client.get("/").status_code == 302  # not signed in
    signin(client, ADMIN_TOKEN)
    assert client.post("/signout").status_code == 400
    assert client.post("/signout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/").status_code == 200  # still signed in
    failed = _failed_id(seeded)
    assert client.post(f"/operator/deliveries/{failed}/retry").status_code == 400
    assert _status(seeded, failed) == DeliveryStatus.FAILED
    resp = client.post("/signout", data={"csrf_token": csrf_of(client)})
    assert resp.status_code == 303
    assert client.get("/").status_code == 302


def test_a_revoked_token_ends_the_session(client, monkeypatch):
    signin(client, CLIENT_TOKEN)
    assert client.get("/").status_code == 200
    monkeypatch.setenv("ACME_API_TOKEN", "a-new-token")
    assert client.get("/").status_code == 302


def test_bearer_token_opens_pages_for_scripts(client, seeded):
    resp = client.get("/teams/platform", headers={"Authorization": f"Bearer {CLIENT_TOKEN}"})
    assert resp.status_code == 200 and "platform" in text(resp)
    resp = client.get("/", headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401 and "trackrecord_session" not in resp.headers.get(
        "Set-Cookie", ""
    )


def test_a_client_sees_only_its_own_teams(client, seeded):
    signin(client, CLIENT_TOKEN)
    overview = text(client.get("/"))
    assert "platform" in overview and "web" in overview and "ops" not in overview
    other, nowhere = client.get("/teams/ops"), client.get("/teams/nosuch")
    assert other.status_code == nowhere.status_code == 404
    assert text(other).replace("ops", "X") == text(nowhere).replace("nosuch", "X")
    assert client.get("/clients/globex").status_code == 404
    acme = client.get("/clients/acme")
    # Months as the client's clock reads them now (acme: Europe/Berlin), not as TODAY, read
    # in UTC when the module was imported, did: they part at a month's end.
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    assert acme.status_code == 200 and "platform" in text(acme)
    assert f'href="/reports/acme/{last_month}.pdf"' in acme.get_data(as_text=True)
    assert f"/reports/acme/{today:%Y-%m}." not in acme.get_data(as_text=True)  # not over yet
    # The link opens with the session alone (built on first request), and only its own client's.
    report = client.get(f"/reports/acme/{last_month}.md")
    assert report.status_code == 200 and report.mimetype == "text/markdown"
    assert "acme" in report.get_data(as_text=True)
    assert client.get(f"/reports/globex/{last_month}.md").status_code == 404
    assert client.get("/operator").status_code == 404
    # Another client's token cannot open acme's team either.
    assert client.get("/teams/platform", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
                      ).status_code == 404  # fmt: skip


def test_team_page_shows_the_figures_the_api_gives(client, seeded):
    period_from, period_to = period(__import__("zoneinfo").ZoneInfo("UTC"))
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    api = client.get(
        f"/api/v1/teams/platform/track-record?from={period_from}&to={period_to}", headers=auth
    ).json
    signin(client, ADMIN_TOKEN)
    page = text(client.get("/teams/platform"))
    kept = api["delivered_early"] + api["delivered_on_time"]
    assert api["commitments_due"] == 2  # #3 is excluded
    assert f"{api['on_time_rate']:.0%} · {kept} of {api['commitments_due']} kept on time" in page
    trust = api["trust_score"]
    assert (
        f"{trust['estimate']:.0%} (likely between {trust['low']:.0%} and {trust['high']:.0%})"
        in page
    )
    assert f"{api['streak_current']} kept in a row" in page
    assert "blocked on the client's API keys" in page and "dana" in page
    html = client.get("/teams/platform").get_data(as_text=True)
    assert f'href="https://github.com/{h.REPO}/issues/1"' in html  # the early delivery
    assert f'href="https://github.com/{h.REPO}/issues/2"' in html  # the late one
    assert "/badges/platform.svg" in html and "[![on-time record](" in html
    assert "<svg" in html and "<title>On-time rate of platform per month" in html


def test_operator_retry_re_enqueues_a_failed_delivery(app, client, seeded, redis_conn):
    failed = _failed_id(seeded)
    signin(client, ADMIN_TOKEN)
    page = text(client.get("/operator"))
    assert "invalid payload" in page
    assert f"/operator/deliveries/{failed}/retry" in client.get("/operator").get_data(as_text=True)
    with session_factory(seeded.database_url)() as s:
        attempts = s.get(Delivery, failed).attempts
    resp = client.post(f"/operator/deliveries/{failed}/retry", data={"csrf_token": csrf_of(client)})
    assert resp.status_code == 303
    queue = Queue(seeded.queue_name, connection=redis_conn)
    assert job_id(failed) in queue.job_ids
    with session_factory(seeded.database_url)() as s:
        row = s.get(Delivery, failed)
        assert (row.status, row.attempts) == (DeliveryStatus.QUEUED, attempts + 1)
    assert "back on the queue" in text(client.get("/operator"))
    # A second retry of a row no longer failed changes nothing.
    again = client.post(
        f"/operator/deliveries/{failed}/retry", data={"csrf_token": csrf_of(client)}
    )
    assert again.status_code == 409 and queue.job_ids.count(job_id(failed)) == 1
    # The worker runs it again: the payload is still invalid, so it is failed again.
    h.run_worker(seeded, redis_conn)
    assert _status(seeded, failed) == DeliveryStatus.FAILED


def _failed_id(settings) -> int:
    with session_factory(settings.database_url)() as s:
        return s.scalar(select(Delivery.id).where(Delivery.status == DeliveryStatus.FAILED))


def _status(settings, row_id: int) -> str:
    with session_factory(settings.database_url)() as s:
        return s.get(Delivery, row_id).status
