"""`trackrecord demo` end to end (issue 12): the example configuration's organisation, sent as
signed webhooks over HTTP to the real Flask app (served in a thread), drained by a real RQ
worker, on SQLite and PostgreSQL; then read back through the JSON API with an admin token.

The API's figures for each team must be what the demo says it built, every team must have
early, on-time, late, dropped and missed promises, re-promises and reopens must be in the
ledger, and a second run must add nothing.
"""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cli.main import main as cli
from ledger.tables import Item, ItemEvent
from tests.helpers import GITHUB_SECRET, JIRA_SECRET
from trackrecord.config import Settings
from trackrecord.db import dispose_all, session_factory
from trackrecord.models import Delivery, DeliveryStatus
from webhook_app import create_app

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "trackrecord.example.toml"
ADMIN = "demo-admin-token"
TEAMS = ("platform", "web", "mobile")
# The API's record fields for the demo's outcome names.
FIELDS = {
    "early": "delivered_early",
    "on_time": "delivered_on_time",
    "late": "delivered_late",
    "dropped": "dropped",
    "missed": "missed",
    "pending": "pending",
}


@pytest.fixture
def demo_env(monkeypatch, database_url, redis_url):
    import uuid

    values = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRACKRECORD_CONFIG": str(EXAMPLE),
        "TRACKRECORD_QUEUE": f"demo-{uuid.uuid4().hex[:8]}",
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "JIRA_WEBHOOK_SECRET": JIRA_SECRET,
        "TRACKRECORD_ADMIN_TOKEN": ADMIN,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def server(demo_env):
    """The real app on a real socket, as `trackrecord serve` would answer."""
    app = create_app(Settings.from_env())
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    dispose_all()


def run_demo(url: str, *extra: str) -> dict:
    args = ["demo", "--url", url, "--drain", "--json", "--wait", "60", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def counts(database_url: str) -> dict:
    with session_factory(database_url)() as s:
        by_status = dict(
            s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
        return {
            "deliveries": by_status,
            "items": s.execute(select(func.count()).select_from(Item)).scalar_one(),
            "events": s.execute(select(func.count()).select_from(ItemEvent)).scalar_one(),
        }


def reopened_items(database_url: str, team: str) -> int:
    with session_factory(database_url)() as s:
        return s.execute(
            select(func.count(func.distinct(ItemEvent.item_id)))
            .join(Item, Item.id == ItemEvent.item_id)
            .where(Item.team == team, ItemEvent.kind == "reopened")
        ).scalar_one()


def test_demo_fills_every_team_through_the_intake(server, database_url):
    app, url = server
    built = run_demo(url)
    assert built["sent"]["queued"] > 500  # a year of work, not a handful
    after_first = counts(database_url)
    assert set(after_first["deliveries"]) == {DeliveryStatus.PROCESSED}, after_first

    client = app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN}"}
    today = date.today()
    period = f"from={today - timedelta(days=400)}&to={today + timedelta(days=90)}"
    for team in TEAMS:
        want = built["teams"][team]
        record = client.get(f"/api/v1/teams/{team}/track-record?{period}", headers=auth)
        assert record.status_code == 200, record.get_json()
        got = record.get_json()
        # Every kind of ending, for every team.
        for outcome in ("early", "on_time", "late", "dropped", "missed"):
            assert want.get(outcome, 0) > 0, (team, outcome, want)
        # What the API reads is what the demo says it built, outcome by outcome.
        assert {o: got[f] for o, f in FIELDS.items()} == {o: want.get(o, 0) for o in FIELDS}
        assert got["unpromised_deliveries"] == want["unpromised"]
        assert 0 < got["on_time_rate"] < 1, got
        assert want["repromised"] > 0 and want["reopened"] > 0, want

        rows = client.get(
            f"/api/v1/teams/{team}/commitments?{period}&per_page=500", headers=auth
        ).get_json()
        repromised = [r for r in rows["commitments"] if r["repromise_count"] > 0]
        assert len(repromised) == want["repromised"]
        # A re-promised item is still judged against its first date.
        assert all(r["first_promised"] != r["latest_promised"] for r in repromised)
        assert reopened_items(database_url, team) == want["reopened"]

    # The teams differ: the first is the most reliable, the last the least.
    rates = [
        client.get(f"/api/v1/teams/{t}/track-record?{period}", headers=auth).get_json()[
            "on_time_rate"
        ]
        for t in TEAMS
    ]
    assert rates[0] > rates[1] > rates[2]

    # A second run sends the same delivery ids: all duplicates, nothing added.
    # (At the first run's moment: steps that fell due since are new deliveries, rightly.)
    again = run_demo(url, "--now", built["now"])
    assert set(again["sent"]) == {"duplicate"}
    assert counts(database_url) == after_first
    assert again["teams"] == built["teams"]


def test_demo_without_a_server_says_so(demo_env):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(cli, ["demo", "--url", f"http://127.0.0.1:{port}"])
    assert result.exit_code != 0
    assert "cannot reach" in result.output and "Traceback" not in result.output
    assert counts(demo_env["DATABASE_URL"])["deliveries"] == {}  # nothing stored


def test_demo_says_where_to_look(demo_env):
    from datetime import UTC, datetime

    from cli.demo import demo_teams, where_to_look
    from cli.demo_story import build_story

    story = build_story(demo_teams(Settings.from_env()), 1, datetime.now(UTC))
    text = "\n".join(where_to_look(story, "http://127.0.0.1:8000"))
    for team in TEAMS:
        assert f"http://127.0.0.1:8000/teams/{team}" in text
        assert f"trackrecord record {team} --from" in text
    for client in ("acme", "globex"):
        assert f"http://127.0.0.1:8000/clients/{client}" in text
    assert "/api/v1/teams/platform/track-record?from=" in text
