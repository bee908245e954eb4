"""One ledger, every surface: the badge, `trackrecord record` (table and JSON) and the API's record
say the same thing in the same words for the same period (the badge's: the last 90 days, today
included), and read an overdue pending promise as missed without the scheduler ever running.
On SQLite and PostgreSQL, through the Flask client and the click runner."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.helpers import CLIENT_TOKEN
from tests.ledger_fixture import insert_ledger, row

TIMEZONES = {"platform": "UTC", "web": "Europe/Berlin"}


def _day(day: date, today: date) -> str:
    """How the words write a date: "15 Oct", with the year when it is not this year's."""
    return f"{day.day} {day:%b}" + ("" if day.year == today.year else f" {day.year}")


@pytest.fixture
def surfaces(client, env):
    runner = CliRunner()

    class Surfaces:
        @staticmethod
        def today(team: str) -> date:
            return datetime.now(ZoneInfo(TIMEZONES[team])).date()

        @staticmethod
        def api(team: str, period_from: date, period_to: date) -> dict:
            query = f"from={period_from.isoformat()}&to={period_to.isoformat()}"
            answer = client.get(
                f"/api/v1/teams/{team}/track-record?{query}",
                headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
            )
            assert answer.status_code == 200, answer.get_json()
            return answer.get_json()

        @staticmethod
        def cli(team: str, period_from: date, period_to: date, *extra: str) -> str:
            args = [
                "record",
                team,
                "--from",
                period_from.isoformat(),
                "--to",
                period_to.isoformat(),
            ]
            result = runner.invoke(main, [*args, *extra])
            assert result.exit_code == 0, result.output
            return result.output

        @staticmethod
        def badge(team: str) -> tuple[str, str]:
            """(value, title) of the team's badge."""
            svg = client.get(f"/badges/{team}.svg").get_data(as_text=True)
            title = unescape(re.search(r"<title>(.*)</title>", svg).group(1))
            value = unescape(re.findall(r"<text [^>]*>([^<]*)</text>", svg)[1])
            return value, title

        def window(self, team: str) -> tuple[date, date]:
            today = self.today(team)
            return today - timedelta(days=89), today

        def agree(self, team: str, period: tuple[date, date]) -> dict:
            """The API's record of the period, after checking that the CLI's table and JSON
            say the same; the CLI's table opens with the summary under its title."""
            rec = self.api(team, *period)
            table = self.cli(team, *period).splitlines()
            assert table[1].strip() == rec["summary"]
            as_json = json.loads(self.cli(team, *period, "--json"))
            moving = ("as_of", "trust_score")  # as of now: a moment later on the CLI
            assert {k: v for k, v in as_json.items() if k not in moving} == {
                k: v for k, v in rec.items() if k not in moving
            }
            assert as_json["trust_score"] == pytest.approx(rec["trust_score"], rel=1e-6)
            return rec

    return Surfaces()


@pytest.mark.parametrize("team", ["platform", "web"])
def test_an_early_delivery_promised_for_a_day_ahead(surfaces, env, team):
    """Issue 7 §2: delivered early, promised for 20 days from now. In the badge's window nothing
    is due yet, and every surface says when the promise falls due; in a period that holds its
    promised date, every surface counts it as kept (a commitment counts in the period of its
    promised date)."""
    today = surfaces.today(team)
    ahead = today + timedelta(days=20)
    made = datetime.now(UTC) - timedelta(days=3)
    insert_ledger(
        env["DATABASE_URL"],
        [row("F1", "early", ahead, made=made, delivered=made + timedelta(days=1), team=team)],
    )
    words = f"nothing due yet · next due {_day(ahead, today)}"
    assert surfaces.badge(team) == (
        f"next due {_day(ahead, today)}",
        f"on-time, last 90 days: {words}",
    )
    rec = surfaces.agree(team, surfaces.window(team))
    assert (rec["summary"], rec["next_due"]) == (words, ahead.isoformat())
    assert (rec["commitments_due"], rec["on_time_rate"]) == (0, None)

    holding = surfaces.agree(team, (surfaces.window(team)[0], ahead))
    assert (holding["commitments_due"], holding["on_time_rate"]) == (1, 1.0)
    assert holding["summary"] == "100% on time · 1 of 1 kept"


def test_badge_cli_and_api_agree_on_the_90_day_window(surfaces, env):
    today = surfaces.today("platform")
    recent = datetime.now(UTC) - timedelta(days=5)
    day = recent.date()
    insert_ledger(
        env["DATABASE_URL"],
        [
            row("B1", "on_time", day, made=recent, delivered=recent),
            row("B2", "early", day, made=recent, delivered=recent),
            row("B3", "early", day, made=recent, delivered=recent),
            row("B4", "late", day, made=recent, delivered=recent, slip=1),
            # Promised 100 days ago: outside the window, on every surface.
            row("B5", "missed", today - timedelta(days=100), made=recent - timedelta(days=120),
                settled=recent - timedelta(days=99)),
            row("B6", "pending", today + timedelta(days=3), made=recent),
        ],
    )  # fmt: skip
    rec = surfaces.agree("platform", surfaces.window("platform"))
    assert rec["summary"] == "75% on time · 3 of 4 kept"
    assert rec["next_due"] == (today + timedelta(days=3)).isoformat()
    assert surfaces.badge("platform") == ("75%", f"on-time, last 90 days: {rec['summary']}")


def test_a_team_with_no_promises_says_so(surfaces):
    rec = surfaces.agree("web", surfaces.window("web"))
    assert (rec["summary"], rec["next_due"]) == ("no promises yet", None)
    assert surfaces.badge("web") == ("no promises yet", "on-time, last 90 days: no promises yet")


def test_an_overdue_pending_promise_reads_as_missed_everywhere(surfaces, env, client):
    """Issue 7 §2: the scheduler never runs here. O1, due 5 days ago, is still `pending` in the
    ledger; the record, the commitments list, the milestones and the badge all read it as missed,
    settled at its deadline."""
    today = surfaces.today("platform")
    made = datetime.now(UTC) - timedelta(days=30)
    kept = datetime.now(UTC) - timedelta(days=8)
    insert_ledger(
        env["DATABASE_URL"],
        [
            row("O1", "pending", today - timedelta(days=5), made=made, scope="v5"),
            row("O2", "on_time", today - timedelta(days=8), made=made, delivered=kept, scope="v5"),
        ],
    )
    window = surfaces.window("platform")
    rec = surfaces.agree("platform", window)
    assert (rec["missed"], rec["pending"], rec["commitments_due"]) == (1, 0, 2)
    assert rec["summary"] == "50% on time · 1 of 2 kept"
    assert (rec["streak_current"], rec["streak_longest"]) == (0, 1)  # O1 broke it at its deadline

    headers = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
    query = f"from={window[0].isoformat()}&to={window[1].isoformat()}"
    listed = client.get(f"/api/v1/teams/platform/commitments?{query}", headers=headers)
    o1 = {c["title"]: c for c in listed.get_json()["commitments"]}["O1"]
    assert (o1["outcome"], o1["recorded_outcome"]) == ("missed", "pending")
    assert o1["settled_at"] == o1["deadline"]

    scopes = client.get("/api/v1/teams/platform/milestones", headers=headers).get_json()
    v5 = {m["scope"]: m for m in scopes["milestones"]}["v5"]
    assert (v5["counts"]["missed"], v5["counts"]["pending"], v5["open"]) == (1, 0, 1)
    assert v5["chance_on_time"]["estimate"] == 0.0

    assert surfaces.badge("platform") == ("50%", f"on-time, last 90 days: {rec['summary']}")
