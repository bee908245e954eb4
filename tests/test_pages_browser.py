"""The pages in a real headless Chromium (Debian's `chromium`, driven by Playwright; no browser
download) against a real HTTP server (werkzeug in a thread), the ledger seeded by signed
webhooks and a real RQ worker on SQLite: sign in through the form, the overview, a team's page
reached by keyboard, its chart and the API's figures, the operator's retry, sign out; a client
token cannot open another client's team. Screenshots go under the test's tmp_path (and to
$TRACKRECORD_SCREENSHOTS when set, to look at them)."""

from __future__ import annotations

import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from werkzeug.serving import make_server

from tests import ledger_helpers as h
from tests.helpers import CLIENT_TOKEN
from tests.test_pages import ADMIN_TOKEN, app  # noqa: F401  (app: two clients and an admin)

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test does)"
)
TODAY = datetime.now(UTC).date()


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path):
    # The browser tests run on SQLite only; the test-client tests cover PostgreSQL.
    from trackrecord import migrate
    from trackrecord.db import dispose_all

    url = f"sqlite:///{tmp_path / 'trackrecord.db'}"
    migrate.upgrade(url)
    yield url
    dispose_all()


def at(day, hour: int = 10) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


def seed(client, settings, redis_conn) -> None:
    """A year of a team's work: each month a milestone of two to four promises, mostly kept,
    some late or missed; a milestone running now; and one delivery with a broken payload."""
    n = 0
    for months_ago in range(11, 0, -1):
        due = TODAY - timedelta(days=30 * months_ago)
        for k in range(2 + months_ago % 3):
            n += 1
            title = f"Promise {n}: ship part {k + 1} of release {12 - months_ago}"
            issue = dict(number=n, due=due.isoformat(), milestone=months_ago + 1, title=title)
            h.post_github(client, *h.gh_issue("opened", at(due - timedelta(days=14)), **issue))
            if (n + months_ago) % 5 == 0:
                continue  # never closed: missed
            shift = 3 if n % 4 == 0 else -2  # every fourth late, the others early
            h.post_github(client, *h.gh_issue("closed", at(due + timedelta(days=shift)), **issue))
    running = TODAY + timedelta(days=9)
    for k in range(3):
        n += 1
        issue = dict(number=n, due=running.isoformat(), milestone=1, title=f"Release work {k}")
        h.post_github(client, *h.gh_issue("opened", at(TODAY - timedelta(days=5)), **issue))
        if k == 0:
            h.post_github(client, *h.gh_issue("closed", at(TODAY - timedelta(days=1)), **issue))
    event, doc = h.gh_issue("opened", at(TODAY), number=999)
    doc["issue"]["number"] = "nine"
    h.post_github(client, event, doc)
    h.run_worker(settings, redis_conn)


@pytest.fixture
def server(app, client, redis_conn):  # noqa: F811
    seed(client, app.extensions["trackrecord"].settings, redis_conn)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


# How many of the page and its tables are wider than a phone's 390 px screen.
WIDER = "[...document.querySelectorAll('html, table')].filter(e => e.scrollWidth > 390).length"


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"pages-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    if target := os.environ.get("TRACKRECORD_SCREENSHOTS"):
        shutil.copy(path, Path(target) / path.name)
    return path


def sign_in(page, base: str, token: str) -> None:
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/signin")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


def test_sign_in_overview_team_by_keyboard_and_sign_out(server, browser, client, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    sign_in(page, server, ADMIN_TOKEN)
    assert page.get_by_role("heading", name="All teams").is_visible()
    assert page.locator("td.spark svg title").first.text_content().startswith("On-time rate of")
    shot(page, tmp_path, "overview")

    # Keyboard only: Tab from the top of the page to the team's link, then Enter.
    page.locator("body").focus()
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == "/teams/platform":
            break
    else:
        pytest.fail("Tab never reached the link to the team page")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/teams/platform")

    api = client.get(
        f"/api/v1/teams/platform/track-record?from={_from()}&to={TODAY}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json
    figures = page.locator("section.figures").inner_text()
    kept = api["delivered_early"] + api["delivered_on_time"]
    assert f"{api['on_time_rate']:.0%}" in figures
    assert f"{kept} of {api['commitments_due']} kept on time" in figures
    chart = page.locator("figure.chart svg")
    assert (
        chart.get_attribute("role") == "img"
        and "per month" in chart.locator("title").first.text_content()
    )
    link = page.get_by_role("link", name="Promise 33: ship part 2 of release 11")
    assert link.get_attribute("href") == f"https://github.com/{h.REPO}/issues/33"
    assert page.locator(f'a[href^="https://github.com/{h.REPO}/issues/"]').count() > 3
    assert "days left" in page.locator("#ms-title + *").inner_text()
    shot(page, tmp_path, "team")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{server}/signin")
    page.goto(f"{server}/teams/platform")
    assert "/signin" in page.url


def test_a_client_cannot_open_another_clients_team(server, browser, tmp_path):
    page = browser.new_page()
    sign_in(page, server, CLIENT_TOKEN)
    assert page.goto(f"{server}/teams/platform").status == 200
    assert page.goto(f"{server}/teams/ops").status == 404
    assert page.get_by_role("heading", name="Not found").is_visible()
    assert page.goto(f"{server}/operator").status == 404
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    # On a phone the tables turn into cards, each value under its column's name: no page, and
    # no table, wider than the screen.
    for path, name in (("/teams/platform", "team-phone"), ("/clients/acme", "client-phone")):
        page.goto(f"{server}{path}")
        shot(page, tmp_path, name)
        assert page.evaluate(WIDER) == 0, path
    progress = page.locator("table.teams td[data-label='On time, last 12 months']").first
    assert progress.is_visible()
    assert "On time" in progress.evaluate("e => getComputedStyle(e, '::before').content")
    # Its own client page lists last month's report; "open" shows it, by the session alone.
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(f"{server}/clients/acme")
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()  # acme's clock, as the page reads it
    last = (today.replace(day=1) - timedelta(days=1)).strftime("%B %Y")
    page.get_by_role("link", name=f"open the report of {last}").click()
    page.wait_for_url(f"{server}/reports/acme/*.html")
    assert page.get_by_role("heading", name=f"Track record of acme: {last}").is_visible()
    shot(page, tmp_path, "report")
    assert page.goto(f"{server}/clients/globex").status == 404


def test_the_operator_retries_a_failed_delivery(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    sign_in(page, server, ADMIN_TOKEN)
    page.goto(f"{server}/operator")
    assert "invalid payload" in page.locator("#failed-title + *").inner_text()
    page.set_viewport_size({"width": 390, "height": 844})  # on a phone too: cards, no overflow
    shot(page, tmp_path, "operator-phone")
    assert page.evaluate(WIDER) == 0
    page.set_viewport_size({"width": 1200, "height": 900})
    page.get_by_role("button", name="Retry").first.click()
    page.wait_for_url(f"{server}/operator")
    assert "back on the queue" in page.get_by_role("status").inner_text()
    assert page.get_by_text("No failed deliveries.").is_visible()
    shot(page, tmp_path, "operator")


def _from():
    from webhook_app.pages_data import period

    return period(ZoneInfo("UTC"))[0]
