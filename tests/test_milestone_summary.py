"""The living milestone summary (issue 9): signed webhooks through Flask and a real RQ worker,
the real PyGithub and jira clients against local stand-ins that record every request. One
summary per scope, written in place (the milestone's description block, or one comment on the
team's `summary_issue`), final once the date passes, never overwritten by an older rendering."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from werkzeug import Request, Response

from connectors.summary_targets import END, START
from ledger.milestones import milestone_figures
from ledger.trust import beta_reputation
from tests import ledger_helpers as h
from tests.test_postbacks import StubGithub, StubJira, at, day, reply
from trackrecord.db import session_factory
from workers import context, summary_text
from workers.milestone_summary import locked, render, write

REPO = h.REPO  # team "platform", UTC
TODAY = datetime.now(UTC).date()
SOON = TODAY + timedelta(days=5)
PAST = TODAY - timedelta(days=6)
KEPT = "Add new space flight simulator"


class StubMilestones(StubGithub):
    """StubGithub plus milestones: GET and PATCH of `/repos/o/r/milestones/N`."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.milestones: dict[int, dict] = {}
        self.patches: list[tuple[int, dict]] = []

    def __call__(self, request: Request) -> Response:
        found = re.fullmatch(r"/repos/([^/]+/[^/]+)/milestones/(\d+)", request.path)
        if not found:
            return super().__call__(request)
        number = int(found[2])
        milestone = self.milestones.setdefault(number, {
            "number": number, "title": f"v{number}.0", "state": "open", "description": KEPT,
            "url": f"{self.base}/repos/{found[1]}/milestones/{number}"})  # fmt: skip
        if request.method == "PATCH":
            change = json.loads(request.data)
            self.patches.append((number, change))
            milestone.update(change)
        return reply(milestone)

    def block(self, number: int) -> str:
        text = self.milestones[number]["description"]
        assert text.count(START) == 1 and text.count(END) == 1
        return text[text.index(START) : text.index(END) + len(END)]


@pytest.fixture
def gh(env, httpserver, monkeypatch):
    base = httpserver.url_for("/").rstrip("/")
    monkeypatch.setenv("GITHUB_API_URL", base)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_summary_token")
    stub = StubMilestones(base)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    return stub


def issue(n: int, due, milestone: int = 1):
    return h.gh_issue("opened", at(due - timedelta(days=10)), number=n, due=due.isoformat(),
                      milestone=milestone)  # fmt: skip


def closed(n: int, when, *, due, milestone: int = 1):
    return h.gh_issue("closed", at(when), number=n, due=due.isoformat(), milestone=milestone,
                      state_reason="completed")  # fmt: skip


def deliver(client, settings, redis_conn, *posts) -> None:
    for event, doc in posts:
        h.post_github(client, event, doc)
    h.run_worker(settings, redis_conn)


def test_the_milestone_description_block_is_written_once_then_edited(
    client, settings, redis_conn, gh
):
    deliver(client, settings, redis_conn, issue(1, SOON), issue(2, SOON))
    assert len(gh.patches) == 1  # two deliveries in one burst: one job, one edit
    text = gh.milestones[1]["description"]
    assert text.startswith(KEPT + "\n\n" + START)
    first = gh.block(1)
    assert "Milestone summary\n\nDelivered 0 · open 2 · late 0 · dropped 0\n" in first
    # Counted from the worker's today, which a suite started before midnight has moved past.
    left = (SOON - datetime.now(UTC).date()).days
    assert f"Due {day(SOON)}: {left} days left · chance of finishing on time " in first
    deliver(client, settings, redis_conn, closed(1, TODAY, due=SOON))
    assert len(gh.patches) == 2
    later = gh.block(1)
    assert "Delivered 1 · open 1 · late 0 · dropped 0" in later
    assert gh.milestones[1]["description"] == f"{KEPT}\n\n{later}"  # the rest untouched
    assert all(set(change) == {"title", "description"} for _, change in gh.patches)


def test_final_report_once_the_date_has_passed(client, settings, redis_conn, gh):
    deliver(client, settings, redis_conn, issue(1, PAST, 2), issue(2, PAST, 2))
    late = closed(1, PAST + timedelta(days=1), due=PAST, milestone=2)
    deliver(client, settings, redis_conn, late)
    block = gh.block(2)
    assert "Final report\n\nDelivered 1 · open 1 · late 2 · dropped 0\n" in block
    assert f"Due {day(PAST)}: 0 of 2 delivered on time" in block
    assert "chance" not in block


def test_a_closed_milestone_gets_its_final_report(client, settings, redis_conn, gh):
    deliver(client, settings, redis_conn, issue(1, SOON))
    assert "Milestone summary" in gh.block(1)
    closing = h.gh_milestone_due(at(TODAY), SOON.isoformat())
    closing[1]["action"] = "closed"
    closing[1].pop("changes")
    deliver(client, settings, redis_conn, closing)
    assert "Final report" in gh.block(1) and len(gh.patches) == 2


def test_an_older_rendering_never_overwrites_a_newer_one(client, settings, redis_conn, gh):
    deliver(client, settings, redis_conn, issue(1, SOON), issue(2, SOON))
    team = context.settings().config.team("platform")
    scope = f"github:{REPO}/milestone/1"
    Session = session_factory(settings.database_url)
    with Session() as s, s.begin():
        # As if a delivery had bumped the version and its job were slow to finish.
        s.execute(text("UPDATE summaries SET version = version + 1"))
    with Session() as s, s.begin():
        older = render(s, locked(s, "platform", scope), team, datetime.now(UTC))
    deliver(client, settings, redis_conn, closed(1, TODAY, due=SOON))  # the newer one
    newer = gh.block(1)
    assert "Delivered 1 · open 1" in newer
    with Session() as s, s.begin():
        assert write(locked(s, "platform", scope), older) == "stale"
    assert gh.block(1) == newer and len(gh.patches) == 2


class StubJiraEdits(StubJira):
    """StubJira plus GET and PUT of one comment, recording the edits."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[tuple[str, str]] = []

    def __call__(self, request: Request) -> Response:
        found = re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)/comment/(\d+)", request.path)
        if not found:
            return super().__call__(request)
        comment = next(c for c in self.comments[found[1]] if c["id"] == found[2])
        comment["self"] = request.url
        if request.method == "PUT":
            comment["body"] = json.loads(request.data)["body"]
            self.puts.append((found[1], found[2]))
        return reply(comment)


def test_a_jira_version_summary_is_one_comment_on_the_summary_issue(
    client, settings, redis_conn, httpserver, monkeypatch, config_path
):
    monkeypatch.setenv("JIRA_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("JIRA_EMAIL", "bot@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", "jira-token")
    config_path.write_text(config_path.read_text().replace(
        'name = "platform"\n', 'name = "platform"\nsummary_issue = "TES-1"\n'))  # fmt: skip
    stub = StubJiraEdits()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    version = {"id": "10001", "name": "1.0", "releaseDate": SOON.isoformat(),
               "self": "https://example.atlassian.net/rest/api/2/version/10001"}  # fmt: skip
    for key in ("TES-41", "TES-42"):
        h.post_jira(client, h.jira_created(at(TODAY - timedelta(days=3)), key=key, due=None,
                                           fixVersions=[version]))  # fmt: skip
    h.run_worker(settings, redis_conn)
    (comment,) = stub.comments["TES-1"]
    assert comment["body"].startswith(
        "Milestone summary: 1.0\n\nDelivered 0 · open 2 · late 0 · dropped 0\n"
    )
    assert (
        "{color:#999999}~trackrecord:summary:jira:example.atlassian.net/version/10001~"
        in (comment["body"])
    )
    resolved = h.jira_resolved(f"{TODAY}T10:00:00.000+0000", key="TES-41", due=None)
    resolved["issue"]["fields"]["fixVersions"] = [version]
    h.post_jira(client, resolved)
    h.run_worker(settings, redis_conn)
    (comment,) = stub.comments["TES-1"]  # edited in place, never re-posted
    assert "Delivered 1 · open 1 · late 0 · dropped 0" in comment["body"]
    assert stub.puts == [("TES-1", comment["id"])]
    # The delivery comment names the fix version it was promised for, by its name.
    (delivered,) = stub.comments["TES-41"]
    assert delivered["body"].splitlines()[0].startswith("Delivered ")
    assert "promised for 1.0, due " in delivered["body"].splitlines()[0]


def test_a_milestone_that_cannot_finish_on_time_says_so_in_words():
    # One item already late (its own earlier date), one still open before the milestone's date:
    # the chance is zero at both ends, which reads as words, not "0% (likely between 0% and 0%)".
    rows = [("s", PAST, "late", False), ("s", SOON, "pending", False)]
    (figures,) = milestone_figures(rows, today=TODAY, trust=beta_reputation(5, 1))
    assert figures["chance_on_time"]["high"] == 0 and figures["days_left"] == 5
    text = "\n".join(summary_text.lines(figures, title="Sprint 9", today=TODAY, closed=False))
    assert "it can no longer finish on time: an item is already late or missed" in text
    assert "0%" not in text
    rows = [("s", SOON, "early", False), ("s", SOON, "pending", False)]
    (hopeful,) = milestone_figures(rows, today=TODAY, trust=beta_reputation(5, 1))
    text = "\n".join(summary_text.lines(hopeful, title="Sprint 9", today=TODAY, closed=False))
    assert "chance of finishing on time" in text and "likely between" in text
