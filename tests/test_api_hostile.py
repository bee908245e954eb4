"""The API and the badge against a hostile caller (issue 8, items 7 and 8), on SQLite and
PostgreSQL: integer query parameters out of bounds or not ASCII digits answer 400 naming the
parameter, never a 500; a client's token cannot tell another client's team or client from one
that does not exist; the badge of a team that turned it off is the unknown team's badge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from tests.conftest import CONFIG_TOML
from tests.helpers import CLIENT_TOKEN
from tests.ledger_fixture import insert_ledger, row

ADMIN_TOKEN = "admin-token-for-tests"
GLOBEX_TOKEN = "globex-client-token"
JUNE = {"from": "2024-06-01", "to": "2024-06-30"}
ANOTHER_CLIENT = """
[[clients]]
name = "globex"
token_env = "GLOBEX_API_TOKEN"

[[clients.teams]]
name = "ops"
jira = ["OPS"]
"""
# acme's team "web" turns its public badge off; "platform" keeps the default (on).
BADGE_OFF = 'name = "web"\n'


@pytest.fixture
def config_path(tmp_path):
    """The config the `env` fixture names in TRACKRECORD_CONFIG, and so the one the app is
    created from: overriding this fixture is what makes the variant reach the app."""
    assert CONFIG_TOML.count(BADGE_OFF) == 1
    path = tmp_path / "trackrecord.toml"
    path.write_text(CONFIG_TOML.replace(BADGE_OFF, BADGE_OFF + "badge = false\n") + ANOTHER_CLIENT)
    return path


@pytest.fixture
def api(client, env, monkeypatch):
    monkeypatch.setenv("TRACKRECORD_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("GLOBEX_API_TOKEN", GLOBEX_TOKEN)
    insert_ledger(env["DATABASE_URL"])

    def get(path, token=CLIENT_TOKEN, **query):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # urlencode percent-encodes "²" and friends as a real client would send them.
        return client.get(f"{path}?{urlencode(query)}" if query else path, headers=headers)

    return get


# -- item 7: integer query parameters ---------------------------------------------------------

HOSTILE = [
    "9223372036854775807",  # bigint's largest: PostgreSQL's OFFSET overflowed (500)
    "9223372036854775808",
    "1" + "0" * 400,
    "²",  # str.isdigit() says yes
    "٣",  # int() says 3
    "１",  # fullwidth one
    "1_000",  # int() accepts underscores
    " 1",
    "1 ",
    "1\n",
    "+1",
    "-1",
    "0",
    "",
    "1.0",
    "1e3",
    "0x10",
    "x",
]
BOUNDS = {"page": (1, 100_000), "per_page": (1, 500)}


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_integer_parameters_out_of_bounds_answer_400(api, name):
    least, most = BOUNDS[name]
    for raw in [*HOSTILE, str(most + 1), "0" * 10 + "1"]:
        answer = api("/api/v1/teams/platform/commitments", **JUNE, **{name: raw})
        assert answer.status_code == 400, (name, raw)
        body = answer.get_json()
        assert body["error"] == "bad_parameter", (name, raw)
        assert f"{name} must be a whole number from {least} to {most}" in body["message"]
        assert len(body["message"]) < 120  # a 400-digit value is not echoed whole


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_integer_parameters_at_their_bounds(api, name):
    least, most = BOUNDS[name]
    for raw in (str(least), str(most), "007"):
        answer = api("/api/v1/teams/platform/commitments", **JUNE, **{name: raw})
        assert answer.status_code == 200, (name, raw, answer.get_json())
        assert answer.get_json()[name] == int(raw)
    # The last page there can be: past the end, empty, with no links that lead nowhere.
    last = api("/api/v1/teams/platform/commitments", **JUNE, page=str(BOUNDS["page"][1]))
    assert (last.get_json()["commitments"], last.get_json()["next"]) == ([], None)


def test_dates_take_ascii_digits_only(api):
    for bad in ("٢٠٢٤-٠٦-٠١", "２０２４-06-01", "2024-06-01\n", " 2024-06-01", "+2024-06-01"):
        for route in ("/api/v1/teams/platform/track-record", "/api/v1/clients/acme/track-record"):
            answer = api(route, **{"from": bad, "to": "2024-06-30"})
            assert answer.status_code == 400, (route, bad)
            assert answer.get_json()["error"] == "bad_date"


# -- item 8: no existence leaks ---------------------------------------------------------------


def _shape(answer, name: str):
    """What a response says, with the name asked for taken out: status, headers but the
    length, and the body."""
    headers = {k: v for k, v in answer.headers.items() if k != "Content-Length"}
    return answer.status_code, headers, answer.get_data(as_text=True).replace(repr(name), "<name>")


ROUTES = {
    "team": [
        ("/api/v1/teams/{}/track-record", JUNE),
        ("/api/v1/teams/{}/milestones", {}),
        ("/api/v1/teams/{}/commitments", JUNE),
        # A bad query string must not tell either: visibility is checked first.
        ("/api/v1/teams/{}/commitments", {**JUNE, "page": "0"}),
        ("/api/v1/teams/{}/track-record", {}),
    ],
    "client": [
        ("/api/v1/clients/{}/track-record", JUNE),
        ("/api/v1/clients/{}/track-record", {"from": "x"}),
    ],
}


@pytest.mark.parametrize(
    ("token", "hidden"),
    [
        (GLOBEX_TOKEN, {"team": ["platform", "web"], "client": ["acme"]}),
        (CLIENT_TOKEN, {"team": ["ops"], "client": ["globex"]}),
    ],
)
def test_another_clients_names_read_as_nonexistent(api, token, hidden):
    for kind, names in hidden.items():
        for route, query in ROUTES[kind]:
            nowhere = api(route.format("nobody"), token, **query)
            assert nowhere.status_code == 404
            assert nowhere.get_json() == {
                "error": "not_found",
                "message": f"no {kind} 'nobody' for this token",
            }
            for name in names:
                answer = api(route.format(name), token, **query)
                assert _shape(answer, name) == _shape(nowhere, "nobody"), (route, name)


def test_no_403_anywhere(api):
    for token in (CLIENT_TOKEN, GLOBEX_TOKEN):
        for kind, names in (("team", ["platform", "web", "ops"]), ("client", ["acme", "globex"])):
            for name in names:
                for route, query in ROUTES[kind]:
                    assert api(route.format(name), token, **query).status_code != 403


def test_admin_token_sees_every_name_and_404_for_none(api):
    for route, query in ROUTES["team"][:3]:
        for name in ("platform", "web", "ops"):
            assert api(route.format(name), ADMIN_TOKEN, **query).status_code == 200
        missing = api(route.format("nobody"), ADMIN_TOKEN, **query)
        assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    for name in ("acme", "globex"):
        assert api(f"/api/v1/clients/{name}/track-record", ADMIN_TOKEN, **JUNE).status_code == 200
    missing = api("/api/v1/clients/nobody/track-record", ADMIN_TOKEN, **JUNE)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


# -- item 8: the badge, a per-team setting ----------------------------------------------------


def test_badge_off_reads_as_an_unknown_team(api, env, client):
    recent = datetime.now(UTC) - timedelta(days=5)
    day = recent.date()
    insert_ledger(
        env["DATABASE_URL"],
        [row("W9", "early", day, made=recent, delivered=recent, team="web")],
    )
    off = client.get("/badges/web.svg")
    unknown = client.get("/badges/nobody.svg")
    assert off.status_code == unknown.status_code == 404
    assert off.mimetype == unknown.mimetype == "image/svg+xml"
    assert off.data == unknown.data  # the same bytes: nothing says which one exists
    assert dict(off.headers) == dict(unknown.headers)
    assert b"no badge" in off.data and b"web" not in off.data and b"%" not in off.data
    # Off is the badge only: the team's record is still there for its client's token.
    assert api("/api/v1/teams/web/track-record", **JUNE).status_code == 200


def test_badge_on_by_default(api, env, client):
    recent = datetime.now(UTC) - timedelta(days=5)
    day = recent.date()
    insert_ledger(
        env["DATABASE_URL"],
        [
            row("B1", "on_time", day, made=recent, delivered=recent),
            row("B2", "late", day, made=recent, delivered=recent, slip=1),
        ],
    )
    for team, value in (("platform", b"50%"), ("ops", b"no promises yet")):
        answer = client.get(f"/badges/{team}.svg")
        assert answer.status_code == 200 and answer.mimetype == "image/svg+xml", team
        assert value in answer.data and b"no badge" not in answer.data
        assert answer.headers["ETag"]
