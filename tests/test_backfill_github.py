"""GitHub backfill through the real PyGithub client against a local stand-in for the REST API:
Link-header pagination, one primary rate-limit 403 with its reset, one 502, and a resumed run."""

from __future__ import annotations

import json
import re
import time
from datetime import date

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from werkzeug import Request, Response

from cli.main import main as cli
from connectors.github.backfill import SYNC_SOURCE, backfill_github
from ledger.tables import Item
from tests.ledger_helpers import outcomes
from trackrecord.config import Settings
from trackrecord.db import session_factory
from trackrecord.models import SyncState

REPO = "Codertocat/Hello-World"
API = f"/repos/{REPO}"
V1 = {"number": 1, "title": "v1.0", "state": "open", "due_on": "2024-05-10T07:00:00Z"}
UNDATED = {"number": 2, "title": "someday", "state": "open", "due_on": None}


def user(login: str) -> dict:
    return {"login": login, "id": abs(hash(login)) % 10**6, "type": "User"}


class StubGithub:
    """Issues by `updated` ascending, `since` and `per_page`/`page` honoured like GitHub."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.items: list[dict] = []
        self.timelines: dict[int, list[dict]] = {}
        self.pulls: dict[int, dict] = {}
        self.faults: list = []  # (predicate(request), Response) answered once each
        self.broken = None  # predicate(request): answer 500 for ever
        self.after_listing = None  # called with each answered listing request

    def issue(self, n, title, *, updated, closed=None, reason=None, milestone=None, body=""):
        self.items.append(
            {
                "url": f"{self.base}{API}/issues/{n}",
                "html_url": f"https://github.com/{REPO}/issues/{n}",
                "id": 1000 + n,
                "node_id": f"I_{n}",
                "number": n,
                "title": title,
                "user": user("octocat"),
                "labels": [{"name": "size:S"}],
                "state": "closed" if closed else "open",
                "state_reason": reason,
                "milestone": milestone,
                "comments": 0,
                "created_at": "2024-05-01T09:00:00Z",
                "updated_at": updated,
                "closed_at": closed,
                "author_association": "MEMBER",
                "body": body,
            }
        )
        return self.items[-1]

    def timeline(self, n, *entries):
        self.timelines[n] = [
            {"id": n * 100 + i, "event": e, "created_at": at, "actor": user("octocat"), **extra}
            for i, (e, at, extra) in enumerate(entries)
        ]

    def __call__(self, request: Request) -> Response:
        if self.broken and self.broken(request):
            return json_response({"message": "Server Error"}, 500)
        for fault in self.faults:
            if fault[0](request):
                self.faults.remove(fault)
                return fault[1]()
        path, args = request.path, request.args
        per_page = int(args.get("per_page", 30))
        if path == f"{API}/milestones":
            return json_response([{**m, "url": f"{self.base}{API}/milestones/{m['number']}"}
                                  for m in (V1, UNDATED)])  # fmt: skip
        if path == f"{API}/issues":
            found = sorted(self.items, key=lambda i: i["updated_at"])
            if "since" in args:
                found = [i for i in found if i["updated_at"] >= args["since"]]
            answer = self.page(request, found, per_page)
            if self.after_listing is not None:
                self.after_listing(request)
            return answer
        if path.endswith("/timeline"):
            return self.page(request, self.timelines.get(int(path.split("/")[-2]), []), per_page)
        if "/pulls/" in path:
            return json_response(self.pulls[int(path.rsplit("/", 1)[1])])
        return json_response({"message": "Not Found"}, 404)

    def page(self, request: Request, found: list, per_page: int) -> Response:
        page = int(request.args.get("page", 1))
        chunk = found[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(found):
            query = {**request.args, "page": str(page + 1)}
            url = f"{self.base}{request.path}?" + "&".join(f"{k}={v}" for k, v in query.items())
            headers["Link"] = f'<{url}>; rel="next"'
        return json_response(chunk, headers=headers)


def json_response(body, status=200, headers=None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json; charset=utf-8")  # fmt: skip


@pytest.fixture
def github(env, httpserver, monkeypatch):
    base = httpserver.url_for("/").rstrip("/")
    monkeypatch.setenv("GITHUB_API_URL", base)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_backfill_token")
    stub = StubGithub(base)
    ms = {**V1, "url": f"{base}{API}/milestones/1"}
    stub.issue(1, "Early", updated="2024-05-09T12:00:00Z", closed="2024-05-09T12:00:00Z",
               reason="completed", milestone=ms)  # fmt: skip
    stub.timeline(1, ("milestoned", "2024-05-02T10:00:00Z", {"milestone": {"title": "v1.0"}}),
                  ("commented", "2024-05-03T10:00:00Z", {"user": user("hubot"),
                   "author_association": "NONE"}),
                  ("closed", "2024-05-09T12:00:00Z", {"state_reason": "completed"}))  # fmt: skip
    stub.issue(2, "Late", updated="2024-05-12T12:00:00Z", closed="2024-05-12T12:00:00Z",
               reason="completed", milestone=ms)  # fmt: skip
    stub.timeline(2, ("milestoned", "2024-05-02T10:00:00Z", {"milestone": {"title": "v1.0"}}),
                  ("closed", "2024-05-12T12:00:00Z", {"state_reason": "completed"}))  # fmt: skip
    stub.issue(3, "Dropped", updated="2024-05-13T08:00:00Z", closed="2024-05-08T08:00:00Z",
               reason="not_planned", milestone=ms)  # fmt: skip
    stub.timeline(3, ("milestoned", "2024-05-02T10:00:00Z", {"milestone": {"title": "v1.0"}}),
                  ("closed", "2024-05-08T08:00:00Z", {"state_reason": "not_planned"}))  # fmt: skip
    # Open, promised; the pull request below delivers it on the due day.
    stub.issue(5, "Fixed by a PR", updated="2024-05-14T08:00:00Z", milestone=ms)
    stub.timeline(5, ("milestoned", "2024-05-03T10:00:00Z", {"milestone": {"title": "v1.0"}}))
    pr = stub.issue(4, "Fix the thing", updated="2024-05-15T08:00:00Z",
                    closed="2024-05-10T15:00:00Z", body="Fixes #5")  # fmt: skip
    pr["pull_request"] = {"url": f"{base}{API}/pulls/4", "merged_at": "2024-05-10T15:00:00Z"}
    stub.pulls[4] = {**pr, "url": f"{base}{API}/pulls/4", "merged": True,
                     "merged_at": "2024-05-10T15:00:00Z", "head": {"ref": "fix-5"},
                     "base": {"ref": "main"}}  # fmt: skip
    stub.timeline(4, ("merged", "2024-05-10T15:00:00Z", {"commit_id": "abc"}),
                  ("closed", "2024-05-10T15:00:00Z", {}))  # fmt: skip
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    return stub


def ledger(url: str) -> dict[str, tuple]:
    return outcomes(url, lambda key: key.split("#")[1])


def state(url: str) -> SyncState:
    with session_factory(url)() as session:
        return session.scalar(select(SyncState).where(SyncState.source == SYNC_SOURCE))


def rate_limited() -> Response:
    # The reset is announced two seconds ahead, so the wait is real but short.
    limited.append(time.time())
    return json_response(
        {"message": "API rate limit exceeded for user ID 1.",
         "documentation_url": "https://docs.github.com/rest/rate-limit"}, 403,
        {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
         "X-RateLimit-Reset": str(int(time.time()) + 2),
         "X-RateLimit-Resource": "core"})  # fmt: skip


limited: list[float] = []


def test_backfill_rides_out_rate_limit_and_502_and_builds_the_ledger(env, github, httpserver):
    github.faults += [
        # Primary rate limit on the second listing request (the one starting at #2's cursor):
        # wait for the announced reset, then go on.
        (lambda r: r.path == f"{API}/issues" and "since" in r.args, rate_limited),
        (lambda r: r.path.endswith("/issues/3/timeline"),
         lambda: json_response({"message": "Server Error"}, 502)),
    ]  # fmt: skip
    limited.clear()
    result = CliRunner().invoke(cli, ["backfill", "github", REPO, "--page-size", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary | {"last_synced_at": None} == summary | {
        "items": 5, "pages": 4, "skipped": 0, "complete": True, "unknown_milestones": 0,
        "last_synced_at": None,
    }  # fmt: skip
    # The client waited for the announced reset (and said so) instead of failing.
    retried = [
        r
        for r, _ in httpserver.log
        if r.path == f"{API}/issues" and r.args.get("since") == "2024-05-12T12:00:00Z"
    ]
    assert len(retried) == 2 and time.time() - limited[0] >= 1
    assert '"status": 403' in result.stderr and "backfill.wait" in result.stderr

    due = date(2024, 5, 10)
    assert ledger(env["DATABASE_URL"]) == {
        "1": ("early", None, due),
        "2": ("late", 2, due),
        "3": ("dropped", None, due),
        "5": ("on_time", None, due),  # delivered by PR #4's merge ("Fixes #5")
        "4": ("linked", None, None),  # the PR is how #5 was kept, not a second win
    }
    requests = [r for r, _ in httpserver.log]
    assert sum(r.path == f"{API}/pulls/4" for r in requests) == 1  # only PRs fetch their PR
    assert all(r.headers["Authorization"] == "token ghp_backfill_token" for r in requests)
    assert state(env["DATABASE_URL"]).last_synced_at is not None


def test_interrupted_run_resumes_after_the_last_committed_page(env, github, httpserver):
    settings = Settings.from_env()
    sessions = session_factory(settings.database_url)
    # The second listing request fails for good: the run stops after page 1 was committed.
    github.broken = lambda r: r.path == f"{API}/issues" and "since" in r.args
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises after its retries
        backfill_github(sessions, settings.config, REPO, page_size=2, retries=1, progress=False)
    saved = state(settings.database_url)
    assert saved.last_synced_at is None
    assert saved.cursor["updated_since"] == "2024-05-12T12:00:00+00:00"
    assert saved.cursor["seen"] == ["2"] and saved.cursor["complete"] is False
    assert set(ledger(settings.database_url)) == {"1", "2"}

    github.broken = None
    first = len(httpserver.log)
    summary = backfill_github(sessions, settings.config, REPO, page_size=2, progress=False)
    again = [r for r, _ in httpserver.log[first:]]
    listings = [r for r in again if r.path == f"{API}/issues"]
    # Continued from the cursor (GitHub's `since` is inclusive: #2 is listed and dropped)...
    assert listings[0].args["since"] == "2024-05-12T12:00:00Z"
    assert summary["resumed_from"] == "2024-05-12T12:00:00+00:00"
    assert (summary["items"], summary["skipped"]) == (3, 0)
    # ...and nothing of page 1 was read again.
    assert not [r for r in again if r.path.split("/")[-2:-1] in (["1"], ["2"])]
    assert set(ledger(settings.database_url)) == {"1", "2", "3", "4", "5"}
    assert state(settings.database_url).last_synced_at is not None


def test_reconcile_rereads_what_changed_since_the_last_backfill(env, github, httpserver):
    assert CliRunner().invoke(cli, ["backfill", "github", REPO]).exit_code == 0
    # After the backfill a webhook is lost: issue 6 is promised and delivered a day early.
    ms = {**V1, "url": f"{github.base}{API}/milestones/1"}
    github.issue(6, "Lost webhook", updated="2099-01-01T00:00:00Z",
                 closed="2024-05-09T09:00:00Z", reason="completed", milestone=ms)  # fmt: skip
    github.timeline(6, ("milestoned", "2024-05-04T10:00:00Z", {"milestone": {"title": "v1.0"}}),
                    ("closed", "2024-05-09T09:00:00Z", {"state_reason": "completed"}))  # fmt: skip
    assert "6" not in ledger(env["DATABASE_URL"])
    before = len(httpserver.log)

    result = CliRunner().invoke(cli, ["reconcile", REPO])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["resync"]["items"] == 1  # only what changed since the last good sync
    assert ledger(env["DATABASE_URL"])["6"] == ("early", None, date(2024, 5, 10))
    # The earlier items were not read again.
    reread = [r for r, _ in httpserver.log[before:] if r.path.endswith("/timeline")]
    assert [r.path for r in reread] == [f"{API}/issues/6/timeline"]


def test_an_item_changed_mid_run_does_not_push_another_out_of_the_listing(env, github, httpserver):
    # Right after the first page (#1, #2) is served, #1 is edited: it moves to the end of the
    # list by `updated`, and everything behind it moves up one place. Page 2 of the original
    # listing would now start at #5, and #3 (older than the run) would be read by nobody.
    def edit_first(request) -> None:
        if "since" not in request.args and request.args.get("page", "1") == "1":
            github.items[0]["updated_at"] = "2024-06-01T00:00:00Z"
            github.after_listing = None

    github.after_listing = edit_first
    settings = Settings.from_env()
    sessions = session_factory(settings.database_url)
    summary = backfill_github(sessions, settings.config, REPO, page_size=2, progress=False)
    assert set(ledger(settings.database_url)) == {"1", "2", "3", "4", "5"}
    assert ledger(settings.database_url)["3"] == ("dropped", None, date(2024, 5, 10))
    # Every request after the first starts at the cursor, never at a page number.
    listings = [r for r, _ in httpserver.log if r.path == f"{API}/issues"]
    assert [r.args.get("since") for r in listings] == [
        None,
        "2024-05-12T12:00:00Z",
        "2024-05-13T08:00:00Z",
        "2024-05-14T08:00:00Z",
        "2024-05-15T08:00:00Z",
        "2024-06-01T00:00:00Z",
    ]
    assert all("page" not in r.args for r in listings)
    assert summary["items"] == 6  # #1 twice: it changed, so it is read again at the end


def test_more_than_a_page_at_one_instant_pages_on_and_restarts_when_the_list_shifts(
    env, github, httpserver
):
    # Four items updated in the same second, pages of two: the cursor cannot split them, so the
    # listing pages on by number, vouching for each page by re-reading the one before it. #12
    # is edited while page 2 is read: page 1 then differs, and the listing starts again.
    for n in (11, 12, 13, 14):
        github.issue(n, f"Bulk {n}", updated="2024-05-20T10:00:00Z")
        github.timeline(n)
    github.items.sort(key=lambda i: (i["updated_at"], i["number"]))

    def edit_12(request) -> None:
        if request.args.get("since") == "2024-05-20T10:00:00Z" and request.args.get("page") == "2":
            bulk_12 = next(i for i in github.items if i["number"] == 12)
            bulk_12["updated_at"] = "2024-06-02T00:00:00Z"
            github.after_listing = None

    github.after_listing = edit_12
    settings = Settings.from_env()
    sessions = session_factory(settings.database_url)
    backfill_github(sessions, settings.config, REPO, page_size=2, progress=False)
    assert set(ledger(settings.database_url)) == {"1", "2", "3", "4", "5"}
    with session_factory(settings.database_url)() as session:
        keys = {k.split("#")[1] for k in session.scalars(select(Item.key))}
    assert {"11", "12", "13", "14"} <= keys
    listings = [
        (r.args.get("since"), r.args.get("page"))
        for r, _ in httpserver.log
        if r.path == f"{API}/issues"
    ]
    assert ("2024-05-20T10:00:00Z", "2") in listings
