"""The living milestone summary under change and faults (issue 9): an item that moves updates
the summary it left; a tracking issue's comment on GitHub is created once, edited, and written
again when someone deletes it; a 502 then success writes once; a rate limit reschedules after
the reset instead of failing; a lost job is relayed; a failure is recorded and cleared by the
next delivery. Real PyGithub against a local stand-in that records every request."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue
from sqlalchemy import select, update
from werkzeug import Request, Response

from connectors import comments
from ledger.summaries import Summary
from tests import ledger_helpers as h
from tests.test_milestone_summary import SOON, TODAY, StubMilestones, closed, deliver, issue
from tests.test_postbacks import at, reply
from trackrecord.db import session_factory
from workers import milestone_summary
from workers.milestone_summary import relay_summaries, update_milestone_summary

REPO = h.REPO
SCOPE = f"github:{REPO}/milestone/1"
TRACKER = 100  # the team's summary_issue number


class StubTracker(StubMilestones):
    """StubMilestones plus single issue comments: GET, PATCH (PyGithub edits by the comment's
    `url`) and a deletion from the outside (`delete`)."""

    def store(self, number: int, body: str, login: str = "trackrecord-bot") -> dict:
        comment = super().store(number, body, login)
        comment["url"] = f"{self.base}/repos/{REPO}/issues/comments/{comment['id']}"
        return comment

    def __call__(self, request: Request) -> Response:
        for fault in list(self.faults):  # first, whatever the path (milestones included)
            if fault[0](request):
                self.faults.remove(fault)
                return fault[1](request)
        found = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", request.path)
        if not found:
            return super().__call__(request)
        every = [c for cs in self.comments.values() for c in cs]
        comment = next((c for c in every if c["id"] == int(found[1])), None)
        if comment is None:
            return reply({"message": "Not Found"}, 404)
        if request.method == "PATCH":
            comment["body"] = json.loads(request.data)["body"]
            self.patches.append((-comment["id"], {"body": comment["body"]}))
        return reply(comment)

    def delete(self, number: int) -> None:
        self.comments[number].clear()


@pytest.fixture
def gh(env, httpserver, monkeypatch):
    base = httpserver.url_for("/").rstrip("/")
    monkeypatch.setenv("GITHUB_API_URL", base)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_summary_token")
    stub = StubTracker(base)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    return stub


@pytest.fixture
def tracker(config_path):
    setting = f'name = "platform"\nsummary_issue = "{REPO}#{TRACKER}"\n'
    config_path.write_text(config_path.read_text().replace('name = "platform"\n', setting))


def tracker_posts(gh) -> int:
    return sum(1 for number, _ in gh.posts if number == TRACKER)


def summary_row(settings) -> Summary:
    with session_factory(settings.database_url)() as s:
        return s.scalars(select(Summary).where(Summary.scope == SCOPE)).one()


def test_an_item_that_moves_updates_the_summary_it_left(client, settings, redis_conn, gh):
    deliver(client, settings, redis_conn, issue(1, SOON), issue(2, SOON))
    assert "open 2" in gh.block(1)
    moved = h.gh_issue("milestoned", at(TODAY), number=1, due=SOON.isoformat(), milestone=2)
    deliver(client, settings, redis_conn, moved)
    assert "Delivered 0 · open 1 · late 0 · dropped 0" in gh.block(1)  # the one it left
    assert "Delivered 0 · open 1 · late 0 · dropped 0" in gh.block(2)  # the one it joined


def test_a_github_tracking_issue_comment_is_written_again_when_deleted(
    client, settings, redis_conn, gh, tracker
):
    deliver(client, settings, redis_conn, issue(1, SOON), issue(2, SOON))
    (comment,) = gh.comments[TRACKER]
    # Named by the milestone's title as the payload showed it, found again by its marker.
    assert comment["body"].startswith("Milestone summary: v1.0\n\nDelivered 0 · open 2")
    assert f"<!-- trackrecord:summary:{SCOPE} -->" in comment["body"]
    assert gh.milestones == {}  # with a summary_issue the description is left alone
    deliver(client, settings, redis_conn, closed(1, TODAY, due=SOON))
    (comment,) = gh.comments[TRACKER]  # edited in place
    assert "Delivered 1 · open 1" in comment["body"] and tracker_posts(gh) == 1
    gh.delete(TRACKER)  # someone deletes the summary
    deliver(client, settings, redis_conn, closed(2, TODAY, due=SOON))
    (again,) = gh.comments[TRACKER]
    assert "Delivered 2 · open 0" in again["body"] and tracker_posts(gh) == 2
    assert summary_row(settings).comment_id == str(again["id"])


def test_a_502_then_success_writes_once(client, settings, redis_conn, gh, monkeypatch):
    monkeypatch.setattr(milestone_summary, "enqueue", lambda pairs, at=None: None)
    deliver(client, settings, redis_conn, issue(1, SOON))
    gh.faults.append((lambda r: r.method == "PATCH", lambda r: reply({"message": "bad"}, 502)))
    with pytest.raises(comments.Transient):
        update_milestone_summary("platform", SCOPE)  # RQ retries it with backoff
    row = summary_row(settings)
    assert (row.version, row.rendered_version) == (1, 0)  # nothing recorded as written
    assert update_milestone_summary("platform", SCOPE) == "written"
    assert update_milestone_summary("platform", SCOPE) == "current"
    assert len(gh.patches) == 1 and "open 1" in gh.block(1)


def test_a_rate_limit_reschedules_after_the_reset(client, settings, redis_conn, gh):
    reset = int(time.time()) + 600
    limited = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    gh.faults.append(
        (lambda r: r.method == "PATCH", lambda r: reply({"message": "rate limit"}, 403, limited))
    )
    deliver(client, settings, redis_conn, issue(1, SOON))
    queue = Queue(settings.queue_name, connection=redis_conn)
    (job_id,) = queue.scheduled_job_registry.get_job_ids()
    assert job_id.startswith("summary-") and job_id.endswith(f"-{reset}")
    assert queue.failed_job_registry.count == 0 and gh.patches == []
    row = summary_row(settings)
    assert (row.rendered_version, row.error) == (0, None)


def test_a_lost_job_is_relayed_and_a_failure_waits_for_the_next_delivery(
    client, settings, redis_conn, gh, monkeypatch
):
    with monkeypatch.context() as m:  # Redis never got the job
        m.setattr(milestone_summary, "enqueue", lambda pairs, at=None: None)
        deliver(client, settings, redis_conn, issue(1, SOON))
    assert gh.patches == []
    assert relay_summaries(min_age_seconds=3600) == 0  # too fresh: may still be in flight
    assert relay_summaries(min_age_seconds=0) == 1
    h.run_worker(settings, redis_conn)
    assert "open 1" in gh.block(1) and relay_summaries(min_age_seconds=0) == 0
    # A write that failed for good is recorded; relay leaves it until the scope moves again.
    Session = session_factory(settings.database_url)
    with Session() as s, s.begin():
        s.execute(update(Summary).values(version=Summary.version + 1, error="gave up"))
        s.execute(update(Summary).values(updated_at=datetime.now(UTC) - timedelta(hours=1)))
    assert relay_summaries(min_age_seconds=0) == 0
    deliver(client, settings, redis_conn, closed(1, TODAY, due=SOON))
    row = summary_row(settings)
    assert (row.error, row.rendered_version) == (None, row.version)
    assert "Delivered 1 · open 0" in gh.block(1)
