"""The JSON API and the badge, through the Flask client, on SQLite and PostgreSQL: each route,
each error status, client-token isolation, the admin token, pagination, badge caching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger import scope_titles
from tests.conftest import CONFIG_TOML
from tests.helpers import CLIENT_TOKEN
from tests.ledger_fixture import insert_ledger, row
from trackrecord.db import session_factory

ADMIN_TOKEN = "admin-token-for-tests"
GLOBEX_TOKEN = "globex-client-token"
JUNE = "from=2024-06-01&to=2024-06-30"
# The field names: a contract with the API's readers.
RECORD_FIELDS = {
    "commitments_due", "pending", "delivered_early", "delivered_on_time", "delivered_late",
    "missed", "dropped", "descoped", "on_time_rate", "say_do_ratio", "slip_days_median",
    "slip_days_p90", "streak_current", "streak_longest", "small_wins", "unpromised_deliveries",
    "first_response_hours_median", "lead_time_days_median", "first_win_days", "trust_score",
    "months", "summary", "next_due",
}  # fmt: skip
ANOTHER_CLIENT = """
[[clients]]
name = "globex"
token_env = "GLOBEX_API_TOKEN"

[[clients.teams]]
name = "ops"
jira = ["OPS"]
"""


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "trackrecord.toml"
    path.write_text(CONFIG_TOML + ANOTHER_CLIENT)
    return path


@pytest.fixture
def api(client, env, monkeypatch):
    monkeypatch.setenv("TRACKRECORD_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("GLOBEX_API_TOKEN", GLOBEX_TOKEN)
    insert_ledger(env["DATABASE_URL"])

    def get(path, token=CLIENT_TOKEN, **headers):
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return client.get(path, headers=headers)

    return get


def test_team_record(api):
    answer = api(f"/api/v1/teams/platform/track-record?{JUNE}")
    assert answer.status_code == 200
    rec = answer.get_json()
    assert rec.keys() >= RECORD_FIELDS
    assert (rec["team"], rec["from"], rec["to"]) == ("platform", "2024-06-01", "2024-06-30")
    # A past period is computed as of its end (team platform: UTC midnight after June 30).
    assert rec["as_of"] == "2024-07-01T00:00:00+00:00"
    # By then C9 (promised 06-28) is overdue too: a third miss, which ends the streak. The
    # longest is H1, H2 (C2, late, is broken at its deadline 06-05, before C1 was kept).
    assert (rec["commitments_due"], rec["on_time_rate"], rec["missed"]) == (9, 3 / 9, 3)
    assert (rec["streak_current"], rec["streak_longest"], rec["pending"]) == (0, 2, 0)
    assert rec["unpromised_deliveries"] == 2
    # In words, as the CLI and the badge say it; nothing more falls due in a period that ended.
    assert (rec["summary"], rec["next_due"]) == ("33% on time · 3 of 9 kept", None)
    assert set(rec["trust_score"]) == {"estimate", "low", "high"}
    assert len(rec["months"]) == 12


def test_client_record_spans_its_teams(api):
    rec = api(f"/api/v1/clients/acme/track-record?{JUNE}").get_json()
    assert rec["client"] == "acme"
    assert rec["commitments_due"] == 11  # platform's 9, web's W1 (missed) and W2 (early)
    # The client's timezone (Europe/Berlin) ends the period: 2024-07-01 00:00 CEST.
    assert rec["as_of"] == "2024-06-30T22:00:00+00:00"


def test_admin_token_reads_every_client(api):
    assert api(f"/api/v1/teams/platform/track-record?{JUNE}", ADMIN_TOKEN).status_code == 200
    ops = api(f"/api/v1/clients/globex/track-record?{JUNE}", ADMIN_TOKEN)
    assert ops.status_code == 200 and ops.get_json()["commitments_due"] == 0


def test_client_token_reads_only_its_own_teams(api):
    """Another client's team is, to a client's token, a team that does not exist: 404
    (tests/test_api_hostile.py compares the bodies)."""
    assert api(f"/api/v1/teams/ops/track-record?{JUNE}", GLOBEX_TOKEN).status_code == 200
    for path in (
        f"/api/v1/teams/platform/track-record?{JUNE}",
        f"/api/v1/clients/acme/track-record?{JUNE}",
        "/api/v1/teams/web/milestones",
        f"/api/v1/teams/platform/commitments?{JUNE}",
    ):
        answer = api(path, GLOBEX_TOKEN)
        assert answer.status_code == 404, path
        assert answer.get_json()["error"] == "not_found"
    assert api(f"/api/v1/teams/ops/track-record?{JUNE}").status_code == 404  # acme's token


@pytest.mark.parametrize(
    ("path", "token", "status", "error"),
    [
        (f"/api/v1/teams/platform/track-record?{JUNE}", None, 401, "unauthorized"),
        (f"/api/v1/teams/platform/track-record?{JUNE}", "wrong", 401, "unauthorized"),
        (f"/api/v1/teams/nobody/track-record?{JUNE}", CLIENT_TOKEN, 404, "not_found"),
        (f"/api/v1/teams/nobody/track-record?{JUNE}", ADMIN_TOKEN, 404, "not_found"),
        (f"/api/v1/clients/nobody/track-record?{JUNE}", ADMIN_TOKEN, 404, "not_found"),
        ("/api/v1/teams/nobody/milestones", CLIENT_TOKEN, 404, "not_found"),
        ("/api/v1/teams/platform/track-record?to=2024-06-30", CLIENT_TOKEN, 400, "missing_date"),
        ("/api/v1/teams/platform/track-record", CLIENT_TOKEN, 400, "missing_date"),
        ("/api/v1/teams/platform/track-record?from=2024-13-01&to=2024-12-31", None, 401, None),
        (
            "/api/v1/teams/platform/track-record?from=2024-13-01&to=2024-12-31",
            CLIENT_TOKEN,
            400,
            "bad_date",
        ),
        ("/api/v1/clients/acme/track-record?from=20240601&to=2024-06-30", CLIENT_TOKEN, 400, None),
        # Real dates, but far outside any promise: refused, not a 500 from date arithmetic.
        (
            "/api/v1/teams/platform/track-record?from=2024-01-01&to=9999-12-31",
            CLIENT_TOKEN,
            400,
            "bad_date",
        ),
        (
            "/api/v1/clients/acme/track-record?from=0001-01-01&to=2024-06-30",
            CLIENT_TOKEN,
            400,
            "bad_date",
        ),
        (
            "/api/v1/teams/platform/track-record?from=2024-07-01&to=2024-06-30",
            CLIENT_TOKEN,
            400,
            "bad_period",
        ),
        (f"/api/v1/teams/platform/commitments?{JUNE}&page=0", CLIENT_TOKEN, 400, "bad_parameter"),
        (f"/api/v1/teams/platform/commitments?{JUNE}&per_page=501", None, 401, None),
        (
            f"/api/v1/teams/platform/commitments?{JUNE}&per_page=501",
            CLIENT_TOKEN,
            400,
            "bad_parameter",
        ),
        (f"/api/v1/teams/platform/commitments?{JUNE}&per_page=x", ADMIN_TOKEN, 400, None),
        # Visibility comes before the query string: a bad page of a hidden team is still a 404.
        (f"/api/v1/teams/ops/commitments?{JUNE}&page=0", CLIENT_TOKEN, 404, "not_found"),
    ],
)
def test_errors(api, path, token, status, error):
    answer = api(path, token)
    assert answer.status_code == status
    body = answer.get_json()
    assert set(body) == {"error", "message"}
    if error:
        assert body["error"] == error
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_commitments_are_paginated(api):
    first = api(f"/api/v1/teams/platform/commitments?{JUNE}&per_page=5").get_json()
    # Platform's June promises: C1..C11, excluded C10 included (the ledger as it stands).
    assert (first["total"], first["pages"], first["page"], first["prev"]) == (11, 3, 1, None)
    seen = [c["item"] for c in first["commitments"]]
    page = first
    while page["next"]:
        page = api(page["next"]).get_json()
        seen += [c["item"] for c in page["commitments"]]
    assert page["page"] == 3 and len(page["commitments"]) == 1
    assert len(seen) == len(set(seen)) == 11
    everything = api(f"/api/v1/teams/platform/commitments?{JUNE}").get_json()["commitments"]
    rows = {c["title"]: c for c in everything}
    c11 = rows["C11"]
    assert (c11["outcome"], c11["recorded_outcome"]) == ("missed", "pending")
    assert c11["settled_at"] == c11["deadline"] == "2024-06-13T00:00:00+00:00"
    assert rows["C10"]["excluded"] is True


def test_milestones(api, env):
    today = datetime.now(UTC).date()
    soon = today + timedelta(days=10)
    made = datetime.now(UTC) - timedelta(days=1)
    insert_ledger(
        env["DATABASE_URL"],
        [
            row("N1", "early", soon, made=made, delivered=made, scope="v9"),
            row("N2", "pending", soon, made=made, scope="v9"),
            row("N3", "pending", soon, made=made, scope="v9"),
            row("N4", "descoped", soon, made=made, settled=made, scope="v9"),
        ],
    )
    with session_factory(env["DATABASE_URL"])() as s, s.begin():
        scope_titles.remember(s, {"v9": "Release 9"})
        scope_titles.remember(s, {"v9": "Release 9.0"})  # renamed: the newest name wins
    body = api("/api/v1/teams/platform/milestones").get_json()
    scopes = {m["scope"]: m for m in body["milestones"]}
    assert set(scopes) == {"v1", "v2", "v9"}
    assert (scopes["v9"]["title"], scopes["v1"]["title"]) == ("Release 9.0", None)
    v9 = scopes["v9"]
    assert (v9["due_date"], v9["days_left"], v9["items"]) == (soon.isoformat(), 10, 3)
    assert v9["progress"] == pytest.approx(1 / 3)  # N1 delivered; N2, N3 open
    p = body["trust_score"]
    assert v9["chance_on_time"]["estimate"] == pytest.approx(p["estimate"] ** 2)
    assert v9["chance_on_time"]["low"] == pytest.approx(p["low"] ** 2)
    # v1 has a late and a missed item: it cannot finish on time any more.
    assert scopes["v1"]["chance_on_time"]["estimate"] == 0.0
    assert scopes["v1"]["counts"]["late"] == 1 and scopes["v1"]["progress"] == pytest.approx(2 / 3)


def test_badge_is_public_and_cacheable(api, env, client):
    recent = datetime.now(UTC) - timedelta(days=5)
    day = recent.date()
    insert_ledger(
        env["DATABASE_URL"],
        [
            row("B1", "on_time", day, made=recent, delivered=recent),
            row("B2", "early", day, made=recent, delivered=recent),
            row("B3", "late", day, made=recent, delivered=recent, slip=1),
        ],
    )
    answer = client.get("/badges/platform.svg")  # no token: a README cannot send one
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
    assert b"on-time" in answer.data and b"67%" in answer.data
    assert "67% on time · 2 of 3 kept" in answer.get_data(as_text=True)  # its title
    assert answer.headers["Cache-Control"] == "public, max-age=300"
    etag = answer.headers["ETag"]
    again = client.get("/badges/platform.svg", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    insert_ledger(env["DATABASE_URL"], [row("B4", "early", day, made=recent, delivered=recent)])
    changed = client.get("/badges/platform.svg", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and b"75%" in changed.data
    assert changed.headers["ETag"] != etag


def test_badge_of_unknown_team_and_of_a_quiet_team(api, client):
    missing = client.get("/badges/nobody.svg")
    # An SVG, where an <img> would show JSON as a broken image (tests/test_api_hostile.py).
    assert missing.status_code == 404 and missing.mimetype == "image/svg+xml"
    assert b"no badge" in missing.data
    quiet = client.get("/badges/ops.svg")
    # Nothing to count: it says so in words, not "n/a" (tests/test_record_surfaces.py).
    assert quiet.status_code == 200 and b"no promises yet" in quiet.data
