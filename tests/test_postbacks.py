"""Comments on settled items (issue 9): signed webhooks through Flask and a real RQ worker, the
real PyGithub and jira clients against local stand-ins for the APIs that record every request.
Exactly once under redelivery, replay, duplicate jobs and racing workers; faults sorted into
retry, reschedule and stop; backfill (store.apply_events directly) never posts."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import select, update
from werkzeug import Request, Response

from cli.main import main as cli
from connectors import comments
from connectors.directory import build_directory
from connectors.github import normalize as github
from ledger import store
from ledger.codec import utc
from ledger.postbacks import Postback
from ledger.tables import Commitment, Item
from tests import ledger_helpers as h
from trackrecord.config import Settings
from trackrecord.db import session_factory
from workers.jobs import settle_overdue_job
from workers.postback import post_delivery_comment

REPO = h.REPO  # team "platform", UTC
TODAY = datetime.now(UTC).date()
DUE = TODAY - timedelta(days=6)
ME = "trackrecord-bot"


def at(day: date, hour: int = 10) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


def reply(body, status=200, headers=None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json; charset=utf-8")  # fmt: skip


class StubGithub:
    """Issue comments as GitHub keeps them, per issue number; `faults` answer once each."""

    def __init__(self) -> None:
        self.comments: dict[int, list[dict]] = {}
        self.posts: list[tuple[int, str]] = []
        self.faults: list = []  # (predicate(request), respond(request) -> Response)
        self.lock = threading.Lock()

    def store(self, number: int, body: str, login: str = ME) -> dict:
        with self.lock:
            comment = {"id": 9000 + len(self.posts) + sum(map(len, self.comments.values())),
                       "body": body, "user": {"login": login, "id": 1, "type": "Bot"},
                       "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
            self.comments.setdefault(number, []).append(comment)
            return comment

    def __call__(self, request: Request) -> Response:
        for fault in list(self.faults):
            if fault[0](request):
                self.faults.remove(fault)
                return fault[1](request)
        if request.path == "/user":
            return reply({"login": ME, "id": 1, "type": "User"})
        found = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)(/comments)?", request.path)
        if not found:
            return reply({"message": "Not Found"}, 404)
        number = int(found[1])
        if not found[2]:
            return reply({"number": number, "title": "x", "state": "closed"})
        if request.method == "POST":
            body = json.loads(request.data)["body"]
            self.posts.append((number, body))
            return reply(self.store(number, body), 201)
        return reply(self.comments.get(number, []))

    def bodies(self) -> list[str]:
        return [c["body"] for cs in self.comments.values() for c in cs]


@pytest.fixture
def gh(env, httpserver, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_postback_token")
    monkeypatch.setenv("TRACKRECORD_PUBLIC_URL", "https://trackrecord.example.com/")
    stub = StubGithub()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    return stub


def deliver(client, settings, redis_conn, *posts, delivery=None) -> None:
    for event, doc in posts:
        h.post_github(client, event, doc, delivery)
    h.run_worker(settings, redis_conn)


def promised(n: int, due: date = DUE):
    return h.gh_issue("opened", at(due - timedelta(days=10)), number=n, due=due.isoformat())


def closed(n: int, day: date, reason: str = "completed", due: date = DUE):
    return h.gh_issue("closed", at(day), number=n, due=due.isoformat(), state_reason=reason)


def rows(settings) -> list[Postback]:
    with session_factory(settings.database_url)() as s:
        return list(s.scalars(select(Postback).order_by(Postback.id)))


def day(d: date) -> str:
    return f"{d.day} {d:%b}" if d.year == TODAY.year else f"{d.day} {d:%b %Y}"


def test_delivered_early_on_time_late_and_dropped_say_so(client, settings, redis_conn, gh):
    deliver(client, settings, redis_conn, *[promised(n) for n in (1, 2, 3, 4)])
    assert rows(settings) == []  # a promise is not a settlement
    deliver(
        client,
        settings,
        redis_conn,
        closed(1, DUE - timedelta(days=2)),
        closed(2, DUE),
        closed(3, DUE + timedelta(days=3)),
        closed(4, DUE - timedelta(days=1), "not_planned"),
    )
    first = {n: cs[0]["body"].splitlines()[0] for n, cs in gh.comments.items()}
    assert first == {
        1: f"Delivered 2 days early: promised for v1.0, due {day(DUE)}, "
        f"closed {day(DUE - timedelta(days=2))}",
        2: f"Delivered on time: promised for v1.0, due {day(DUE)}, closed {day(DUE)}",
        3: f"Delivered 3 days late: promised for v1.0, due {day(DUE)}, "
        f"closed {day(DUE + timedelta(days=3))}",
        4: f"Dropped: promised for v1.0, due {day(DUE)}, "
        f"closed on {day(DUE - timedelta(days=1))} without being delivered",
    }
    late = gh.comments[3][0]["body"]
    assert "Milestone: 3 of 3 done, 0 still open" in late  # the dropped one left the scope
    assert "Team record, last 90 days: 50% on time · 2 of 4 kept" in late
    assert "trust score" in late and "likely between" in late
    assert "https://trackrecord.example.com/badges/platform.svg" in late
    assert [(r.status, r.comment_id is not None) for r in rows(settings)] == [("posted", True)] * 4


def test_missed_when_the_deadline_passes(client, settings, redis_conn, gh):
    deliver(client, settings, redis_conn, promised(7, TODAY + timedelta(days=3)))
    with session_factory(settings.database_url)() as s, s.begin():
        item_id = s.scalar(select(Item.id).where(Item.key == f"github:{REPO}#7"))
        past = datetime.now(UTC) - timedelta(hours=1)
        s.execute(update(Commitment).where(Commitment.item_id == item_id).values(deadline=past))
    assert settle_overdue_job() == 1
    h.run_worker(settings, redis_conn)
    assert settle_overdue_job() == 0
    h.run_worker(settings, redis_conn)
    assert [b.splitlines()[0] for b in gh.bodies()] == [
        f"Missed: promised for v1.0, due {day(TODAY + timedelta(days=3))}, still open"
    ]


def test_redelivery_replay_duplicate_job_and_racing_workers_post_once(
    client, settings, redis_conn, gh
):
    posts = [promised(1), closed(1, DUE)]
    deliver(client, settings, redis_conn, *posts)
    deliver(client, settings, redis_conn, posts[1], delivery="same-id")
    deliver(client, settings, redis_conn, posts[1], delivery="same-id")  # redelivered
    deliver(client, settings, redis_conn, *posts)  # the whole stream under fresh ids
    assert len(gh.posts) == 1
    (row,) = rows(settings)
    assert post_delivery_comment(row.id) == "not_claimable"  # a duplicate job
    # A second settlement (reopened, delivered again) and two workers racing for its row.
    reopened = h.gh_issue("reopened", at(DUE + timedelta(days=1)), number=1, state="open",
                          closed_at=at(DUE), due=DUE.isoformat())  # fmt: skip
    for event, doc in [reopened, closed(1, DUE + timedelta(days=2))]:
        h.post_github(client, event, doc)
    queue = Queue(settings.queue_name, connection=redis_conn)
    from workers.jobs import process_delivery

    for job in list(queue.get_jobs()):
        if job.func_name.endswith("process_delivery"):
            process_delivery(*job.args)
    second = rows(settings)[-1]
    assert second.kind.startswith("settled:late:")
    results = []
    threads = [threading.Thread(target=lambda: results.append(post_delivery_comment(second.id)))
               for _ in range(2)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["not_claimable", "posted"]
    assert len(gh.posts) == 2


def test_a_502_then_success_posts_once(client, settings, redis_conn, gh, monkeypatch):
    monkeypatch.setattr("workers.postback.enqueue", lambda ids, at=None: None)
    deliver(client, settings, redis_conn, promised(1), closed(1, DUE))
    (row,) = rows(settings)
    gh.faults.append((lambda r: r.method == "POST", lambda r: reply({"message": "bad"}, 502)))
    with pytest.raises(comments.Transient):
        post_delivery_comment(row.id)  # RQ retries it with backoff
    assert (rows(settings)[0].status, rows(settings)[0].attempts) == ("pending", 1)
    assert post_delivery_comment(row.id) == "posted"
    assert len(gh.bodies()) == 1


def test_a_timeout_after_the_server_stored_the_comment_is_not_posted_again(
    client, settings, redis_conn, gh, monkeypatch
):
    monkeypatch.setattr("workers.postback.enqueue", lambda ids, at=None: None)
    monkeypatch.setattr(comments, "TIMEOUT", 1)
    deliver(client, settings, redis_conn, promised(1), closed(1, DUE))
    (row,) = rows(settings)

    def slow(request):
        gh.store(1, json.loads(request.data)["body"])
        time.sleep(1.5)
        return reply({}, 201)

    gh.faults.append((lambda r: r.method == "POST", slow))
    with pytest.raises(comments.Transient):
        post_delivery_comment(row.id)
    assert post_delivery_comment(row.id) == "found"
    (again,) = rows(settings)
    assert (again.status, again.comment_id) == ("posted", str(gh.comments[1][0]["id"]))
    assert len(gh.bodies()) == 1


def test_a_crash_between_post_and_commit_is_healed_by_the_marker(client, settings, redis_conn, gh):
    deliver(client, settings, redis_conn, promised(1), closed(1, DUE))
    (row,) = rows(settings)
    # As if the worker died after GitHub stored the comment, before the commit: the row stays
    # claimed until its lease ends, then the next job finds the comment instead of posting.
    with session_factory(settings.database_url)() as s, s.begin():
        s.execute(update(Postback).values(status="claimed", comment_id=None,
                  claimed_at=datetime.now(UTC) - timedelta(minutes=10)))  # fmt: skip
    from workers.postback import relay_postbacks

    assert relay_postbacks(min_age_seconds=0) == 1
    h.run_worker(settings, redis_conn)
    assert len(gh.posts) == 1
    assert rows(settings)[0].status == "posted"


def test_a_rate_limit_reschedules_without_counting_a_failure(client, settings, redis_conn, gh):
    reset = int(time.time()) + 600
    limited = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    gh.faults.append(
        (
            lambda r: r.method == "POST",
            lambda r: reply({"message": "API rate limit exceeded"}, 403, limited),
        )
    )
    deliver(client, settings, redis_conn, promised(1), closed(1, DUE))
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("pending", 0)
    assert utc(row.not_before) == datetime.fromtimestamp(reset, UTC)
    scheduled = Queue(settings.queue_name, connection=redis_conn).scheduled_job_registry
    assert scheduled.get_job_ids() == [f"postback-{row.id}-at-{reset}"]
    assert gh.posts == []


def test_a_deleted_item_stops_and_is_recorded(client, settings, redis_conn, gh):
    gh.faults.append((lambda r: r.method == "POST", lambda r: reply({"message": "Not Found"}, 404)))
    deliver(client, settings, redis_conn, promised(1), closed(1, DUE))
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "404" in row.error
    assert post_delivery_comment(row.id) == "not_claimable"  # not retried
    out = CliRunner().invoke(cli, ["postbacks", "--failed"])
    assert out.exit_code == 0 and f"github:{REPO}#1" in out.output and "failed" in out.output
    out = CliRunner().invoke(cli, ["postbacks", "--retry", str(row.id)])
    assert out.exit_code == 0, out.output
    h.run_worker(settings, redis_conn)
    assert rows(settings)[0].status == "posted" and len(gh.posts) == 1


def test_backfill_and_dry_run_post_nothing(client, settings, redis_conn, gh, config_path):
    # Backfill and reconciliation write through store.apply_events, never the webhook path.
    cfg = Settings.from_env().config
    events = []
    for event, doc in [promised(1), closed(1, DUE)]:
        events += github.normalize(event, doc)
    with session_factory(settings.database_url)() as s, s.begin():
        store.apply_events(s, build_directory(cfg), None, events, reach={("github", REPO.lower())})
    assert rows(settings) == []
    config_path.write_text(config_path.read_text().replace(
        'name = "platform"\n', 'name = "platform"\ndry_run = true\n'))  # fmt: skip
    deliver(client, settings, redis_conn, promised(2), closed(2, DUE))
    (row,) = rows(settings)
    assert (row.status, row.error) == ("skipped", "dry_run")
    assert row.body.startswith("Delivered on time") and gh.posts == []


class StubJira:
    def __init__(self) -> None:
        self.comments: dict[str, list[dict]] = {}

    def __call__(self, request: Request) -> Response:
        if request.path == "/rest/api/2/serverInfo":
            return reply({"baseUrl": "https://example.atlassian.net", "version": "1001.0.0",
                          "versionNumbers": [1001, 0, 0], "deploymentType": "Cloud"})  # fmt: skip
        if request.path == "/rest/api/2/myself":
            return reply({"accountId": "me-123", "timeZone": "UTC"})
        found = re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)/comment", request.path)
        if not found:
            return reply({"errorMessages": ["not found"]}, 404)
        key = found[1]
        if request.method == "POST":
            comment = {
                "id": str(100 + len(self.comments.get(key, []))),
                "author": {"accountId": "me-123"},
                "body": json.loads(request.data)["body"],
            }
            self.comments.setdefault(key, []).append(comment)
            return reply(comment, 201)
        cs = self.comments.get(key, [])
        return reply({"comments": cs, "startAt": 0, "maxResults": 50, "total": len(cs)})


def test_a_resolved_jira_issue_gets_the_same_comment(client, settings, redis_conn, httpserver,
                                                     monkeypatch):  # fmt: skip
    monkeypatch.setenv("JIRA_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("JIRA_EMAIL", "bot@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", "jira-token")
    stub = StubJira()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    due = DUE.isoformat()
    h.post_jira(client, h.jira_created(at(DUE - timedelta(days=9)), key="TES-41", due=due))
    resolved = h.jira_resolved(f"{DUE - timedelta(days=1)}T10:00:00.000+0000", due=due)
    h.post_jira(client, resolved)
    h.post_jira(client, resolved)  # the same resolution, delivered twice
    h.run_worker(settings, redis_conn)
    (comment,) = stub.comments["TES-41"]
    assert comment["body"].splitlines()[0] == (
        f"Delivered 1 day early: due {day(DUE)}, closed {day(DUE - timedelta(days=1))}"
    )
    (row,) = rows(settings)
    assert (row.status, row.comment_id) == ("posted", "100")
    # The marker is found on our own comment by `myself`, so a retried job posts nothing.
    with session_factory(settings.database_url)() as s, s.begin():
        s.execute(update(Postback).values(status="pending", attempts=1))
    assert post_delivery_comment(row.id) == "found"
    assert len(stub.comments["TES-41"]) == 1
