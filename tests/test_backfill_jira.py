"""Jira backfill through the real `jira` client against a local stand-in for Jira Cloud:
/search/jql with nextPageToken, one 429 with Retry-After, one 502, and a resumed run."""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from werkzeug import Request, Response

from cli.main import main as cli
from connectors.jira.backfill import SYNC_SOURCE, backfill_jira
from connectors.jira.normalize import parse_time
from connectors.jira_api import JiraNotConfigured, jira_client
from ledger.tables import Item
from tests.ledger_helpers import outcomes
from trackrecord.config import Settings
from trackrecord.db import session_factory
from trackrecord.models import SyncState

SEARCH = "/rest/api/2/search/jql"
DONE = {"id": "10002", "name": "Done", "statusCategory": {"key": "done", "name": "Done"}}
TODO = {"id": "10000", "name": "To Do", "statusCategory": {"key": "new", "name": "To Do"}}
VERSION = {"id": "10100", "name": "1.0", "releaseDate": "2024-05-10", "released": False}


def change(at: str, *items: tuple) -> dict:
    return {
        "id": str(abs(hash(at)) % 10**6),
        "author": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia"},
        "created": at,
        "items": [
            {"field": f, "fieldtype": "jira", "fieldId": fid, "from": a, "fromString": a_s,
             "to": b, "toString": b_s}
            for f, fid, a, a_s, b, b_s in items
        ],
    }  # fmt: skip


def resolved(at: str, resolution: str = "Done") -> dict:
    return change(
        at,
        ("status", "status", "10000", "To Do", "10002", "Done"),
        ("resolution", "resolution", None, None, "10000", resolution),
    )


def issue(key, updated, *histories, duedate=None, done=None, resolution=None, versions=()):
    return {
        "id": str(10000 + int(key.split("-")[1])),
        "key": key,
        "self": f"https://example.atlassian.net/rest/api/2/issue/{key}",
        "fields": {
            "summary": f"Work item {key}",
            "created": "2024-05-01T09:00:00.000+0000",
            "updated": updated,
            "duedate": duedate,
            "fixVersions": list(versions),
            "status": DONE if done else TODO,
            "resolution": {"id": "10000", "name": resolution or "Done"} if done else None,
            "resolutiondate": done,
            "reporter": {"accountId": "5b10a2844c20165700ede21g"},
            "customfield_10016": 2.0,
            "customfield_10020": None,
        },
        "changelog": {
            "startAt": 0,
            "maxResults": 100,
            "total": len(histories),
            "histories": list(histories),
        },  # fmt: skip
    }


ISSUES = [
    # Due date set on the 2nd, done on the 9th: early.
    issue("TES-1", "2024-05-09T12:00:00.000+0000",
          change("2024-05-02T10:00:00.000+0000",
                 ("duedate", "duedate", None, None, "2024-05-10", "2024-05-10 00:00:00.0")),
          resolved("2024-05-09T12:00:00.000+0000"),
          duedate="2024-05-10", done="2024-05-09T12:00:00.000+0000"),
    # Won't Do: dropped.
    issue("TES-3", "2024-05-09T13:00:00.000+0000", resolved("2024-05-08T08:00:00.000+0000",
          "Won't Do"), duedate="2024-05-10", done="2024-05-08T08:00:00.000+0000",
          resolution="Won't Do"),
    # Fix version 1.0 (released 2024-05-10) added on the 3rd, done on the day: on time.
    issue("TES-4", "2024-05-10T15:00:00.000+0000",
          change("2024-05-03T10:00:00.000+0000",
                 ("Fix Version", "fixVersions", None, None, "10100", "1.0")),
          resolved("2024-05-10T15:00:00.000+0000"),
          versions=[VERSION], done="2024-05-10T15:00:00.000+0000"),
    # Born with its due date, done two days late.
    issue("TES-2", "2024-05-12T12:00:00.000+0000", resolved("2024-05-12T12:00:00.000+0000"),
          duedate="2024-05-10", done="2024-05-12T12:00:00.000+0000"),
    # Done early, reopened, done again a day late: the last close counts.
    issue("TES-5", "2024-05-13T09:00:00.000+0000", resolved("2024-05-05T09:00:00.000+0000"),
          change("2024-05-06T09:00:00.000+0000",
                 ("status", "status", "10002", "Done", "10000", "To Do"),
                 ("resolution", "resolution", "10000", "Done", None, None)),
          resolved("2024-05-11T09:00:00.000+0000"),
          duedate="2024-05-10", done="2024-05-11T09:00:00.000+0000"),
]  # fmt: skip


class StubJira:
    def __init__(self) -> None:
        self.faults: list = []  # (predicate(request), make_response) answered once each
        self.broken = None  # predicate(request): 500 for ever
        self.extra: list[dict] = []  # more issues for the search, beside ISSUES
        self.changelogs: dict[str, list[dict]] = {}  # key -> every history, for /changelog
        self.deployment = "Cloud"  # "Server": classic /search with startAt, as Data Center
        self.timezone = "Europe/Berlin"  # the API user's profile: JQL dates are read in it
        self.changed: dict[str, dict] = {}  # key -> the issue as it is now, over ISSUES
        self.after_search = None  # called with each answered search request

    def __call__(self, request: Request) -> Response:
        if self.broken and self.broken(request):
            return reply({"errorMessages": ["Internal server error"]}, 500)
        for fault in self.faults:
            if fault[0](request):
                self.faults.remove(fault)
                return fault[1]()
        if request.path == "/rest/api/2/serverInfo":
            return reply({"baseUrl": "https://example.atlassian.net", "version": "1001.0.0",
                          "versionNumbers": [1001, 0, 0], "deploymentType": self.deployment,
                          "buildNumber": 100282, "serverTitle": "Jira"})  # fmt: skip
        if request.path == "/rest/api/2/myself":
            return reply({"accountId": "5b10a2844c20165700ede21g", "timeZone": self.timezone})
        if request.path == "/rest/api/2/project/TES/versions":
            return reply([VERSION])
        if request.path == "/rest/api/2/field":
            return reply([{"id": "customfield_10020", "name": "Sprint", "custom": True,
                           "clauseNames": ["cf[10020]", "Sprint"]},
                          {"id": "duedate", "name": "Due date", "custom": False,
                           "clauseNames": ["due", "duedate"]}])  # fmt: skip
        if request.path == SEARCH or (
            request.path == "/rest/api/2/search" and self.deployment == "Server"
        ):
            answer = self.search(request) if request.path == SEARCH else self.classic(request)
            if self.after_search is not None:
                self.after_search(request)
            return answer
        if m := re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)/changelog", request.path):
            # Two histories a page, as Jira pages its changelog endpoint (startAt/isLast).
            everything, start = self.changelogs[m[1]], int(request.args.get("startAt", 0))
            values = everything[start : start + 2]
            return reply({"startAt": start, "maxResults": 2, "total": len(everything),
                          "isLast": start + 2 >= len(everything), "values": values})  # fmt: skip
        return reply({"errorMessages": ["not found"]}, 404)

    def matching(self, jql: str) -> list[dict]:
        """The issues the JQL finds, by `updated` then key: "yyyy-MM-dd HH:mm" (or a bare day)
        is read in the user's timezone, as Jira does."""
        issues = [self.changed.get(i["key"], i) for i in ISSUES + self.extra]
        found = sorted(issues, key=lambda i: (parse_time(i["fields"]["updated"]), i["key"]))
        if m := re.search(r'updated >= "([^"]+)"', jql):
            fmt = "%Y-%m-%d %H:%M" if " " in m[1] else "%Y-%m-%d"
            bound = datetime.strptime(m[1], fmt).replace(tzinfo=ZoneInfo(self.timezone))
            found = [i for i in found if parse_time(i["fields"]["updated"]) >= bound]
        return found

    def search(self, request: Request) -> Response:
        jql, size = request.args["jql"], int(request.args.get("maxResults", 50))
        found = self.matching(jql)
        offset = int(request.args.get("nextPageToken", "tok-0").split("-")[1])
        page = found[offset : offset + size]
        body = {"issues": page, "isLast": offset + size >= len(found)}
        if not body["isLast"]:
            body["nextPageToken"] = f"tok-{offset + size}"
        return reply(body)

    def classic(self, request: Request) -> Response:
        # Server / Data Center: startAt + total, no tokens.
        start, size = int(request.args.get("startAt", 0)), int(request.args["maxResults"])
        found = self.matching(request.args["jql"])
        return reply({"startAt": start, "maxResults": size, "total": len(found),
                      "issues": found[start : start + size]})  # fmt: skip


def reply(body, status=200, headers=None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json;charset=UTF-8")  # fmt: skip


@pytest.fixture
def jira(env, httpserver, monkeypatch):
    monkeypatch.setenv("JIRA_URL", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("JIRA_EMAIL", "mia@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", "jira-api-token-value")
    stub = StubJira()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(stub)
    return stub


def ledger(url: str) -> dict[str, tuple]:
    return outcomes(url, lambda key: key.removeprefix("jira:"))


def searches(httpserver, start: int = 0) -> list[Request]:
    return [r for r, _ in httpserver.log[start:] if r.path == SEARCH]


def test_backfill_rides_out_429_and_502_and_builds_the_ledger(env, jira, httpserver):
    limited: list[float] = []

    def too_many() -> Response:
        limited.append(time.time())
        return reply({"errorMessages": ["Rate limit exceeded."]}, 429, {"Retry-After": "1"})

    # Each request after the first starts at the cursor: TES-3's instant (13:00Z, 15:00 in the
    # user's Berlin), then TES-4's, then TES-2's.
    jira.faults += [
        (lambda r: r.path == SEARCH and "updated >=" in r.args["jql"], too_many),
        (lambda r: r.path == SEARCH and '"2024-05-10 17:00"' in r.args["jql"],
         lambda: reply({"errorMessages": ["Bad gateway"]}, 502)),
    ]  # fmt: skip
    result = CliRunner().invoke(cli, ["backfill", "jira", "TES", "--page-size", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["items"], summary["pages"], summary["complete"]) == (5, 4, True)
    assert time.time() - limited[0] >= 1  # Retry-After was honoured
    assert '"status": 429' in result.stderr and '"status": 502' in result.stderr

    due = date(2024, 5, 10)
    assert ledger(env["DATABASE_URL"]) == {
        "TES-1": ("early", None, due),
        "TES-2": ("late", 2, due),
        "TES-3": ("dropped", None, due),
        "TES-4": ("on_time", None, due),
        "TES-5": ("late", 1, due),
    }
    jqls = [r.args["jql"] for r in searches(httpserver)]
    assert jqls[0] == 'project = "TES" ORDER BY updated ASC, key ASC'
    assert [j.split('"')[3] for j in jqls[1:]] == [
        "2024-05-09 15:00", "2024-05-09 15:00", "2024-05-10 17:00", "2024-05-10 17:00",
        "2024-05-12 14:00",
    ]  # fmt: skip
    first = searches(httpserver)[0]
    assert first.args["expand"] == "changelog"
    assert not [r for r in searches(httpserver) if "nextPageToken" in r.args]
    assert all(r.authorization.username == "mia@example.com" for r, _ in httpserver.log)


def test_interrupted_run_resumes_after_the_last_committed_page(env, jira, httpserver):
    settings = Settings.from_env()
    sessions = session_factory(settings.database_url)
    jira.broken = lambda r: r.path == SEARCH and "updated >=" in r.args["jql"]
    with pytest.raises(Exception):  # noqa: B017 - the JIRAError left after the retries
        backfill_jira(sessions, settings.config, "TES", page_size=2, retries=1, backoff=0.05)
    with sessions() as session:
        saved = session.scalar(select(SyncState).where(SyncState.source == SYNC_SOURCE))
    assert saved.cursor["updated_since"] == "2024-05-09T13:00:00+00:00"
    assert saved.last_synced_at is None
    assert set(ledger(settings.database_url)) == {"TES-1", "TES-3"}

    jira.broken = None
    start = len(httpserver.log)
    summary = backfill_jira(sessions, settings.config, "TES", page_size=2)
    again = searches(httpserver, start)
    # The cursor's minute in the user's timezone (TES-3, 13:00Z = 15:00 in Berlin); TES-3
    # comes again and is dropped as read.
    assert again[0].args["jql"] == (
        'project = "TES" AND updated >= "2024-05-09 15:00" ORDER BY updated ASC, key ASC'
    )
    assert "nextPageToken" not in again[0].args
    assert (summary["items"], summary["skipped"]) == (3, 0)
    assert set(ledger(settings.database_url)) == {f"TES-{n}" for n in range(1, 6)}


def test_missing_jira_settings_are_named(monkeypatch):
    for name in ("JIRA_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_PAT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(JiraNotConfigured, match="JIRA_URL.*JIRA_EMAIL.*JIRA_API_TOKEN.*JIRA_PAT"):
        jira_client()


def test_unknown_project_and_bad_since_are_refused(env):
    unknown = CliRunner().invoke(cli, ["backfill", "jira", "NOPE"])
    assert unknown.exit_code == 1 and "'NOPE' is not in the configuration" in unknown.output
    bad = CliRunner().invoke(
        cli, ["backfill", "github", "Codertocat/Hello-World", "--since", "may"]
    )
    assert bad.exit_code == 2 and "'may' is not a date" in bad.output


def test_a_long_changelog_is_read_whole(env, jira, httpserver):
    # Promised for the 8th, re-promised for the 12th, done on the 11th: judged against the
    # first promise, three days late. The search response carries only the oldest history.
    histories = [
        change("2024-05-02T10:00:00.000+0000",
               ("duedate", "duedate", None, None, "2024-05-08", "2024-05-08 00:00:00.0")),
        change("2024-05-06T10:00:00.000+0000",
               ("duedate", "duedate", "2024-05-08", "2024-05-08 00:00:00.0", "2024-05-12",
                "2024-05-12 00:00:00.0")),
        resolved("2024-05-11T12:00:00.000+0000"),
    ]  # fmt: skip
    long = issue("TES-6", "2024-05-11T12:00:00.000+0000", histories[0],
                 duedate="2024-05-12", done="2024-05-11T12:00:00.000+0000")  # fmt: skip
    long["changelog"]["total"] = 3
    jira.extra.append(long)
    jira.changelogs["TES-6"] = histories

    result = CliRunner().invoke(cli, ["backfill", "jira", "TES"])
    assert result.exit_code == 0, result.output
    assert ledger(env["DATABASE_URL"])["TES-6"] == ("late", 3, date(2024, 5, 8))
    pages = [r.args.get("startAt", "0") for r, _ in httpserver.log if "changelog" in r.path]
    assert pages == ["0", "2"]  # only the long one, both pages


def test_server_backfill_pages_with_start_at_and_a_personal_access_token(
    env, jira, httpserver, monkeypatch
):
    jira.deployment = "Server"
    monkeypatch.delenv("JIRA_EMAIL")
    monkeypatch.delenv("JIRA_API_TOKEN")
    monkeypatch.setenv("JIRA_PAT", "jira-pat-value")
    result = CliRunner().invoke(cli, ["backfill", "jira", "TES", "--page-size", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["items"] == 5
    classic = [r for r, _ in httpserver.log if r.path == "/rest/api/2/search"]
    # Each request starts at the cursor, so always at place 0 of its own list.
    assert [r.args["startAt"] for r in classic] == ["0", "0", "0", "0"]
    assert not searches(httpserver)  # never Cloud's /search/jql
    assert all(r.headers["Authorization"] == "Bearer jira-pat-value" for r in classic)
    assert ledger(env["DATABASE_URL"])["TES-2"] == ("late", 2, date(2024, 5, 10))
    assert "jira-pat-value" not in result.output


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_an_issue_changed_mid_run_does_not_push_another_out_of_the_listing(
    env, jira, httpserver, deployment
):
    # Right after the first page (TES-1, TES-3) is answered, TES-1 is edited: it moves to the
    # end of the list and everything behind it moves up one place. startAt=2 (or the token of
    # place 2) would now start at TES-2, and TES-4 (older than the run) would be read by nobody.
    jira.deployment = deployment
    edited = {**ISSUES[0], "fields": {**ISSUES[0]["fields"]}}
    edited["fields"]["updated"] = "2024-06-01T09:00:00.000+0000"

    def edit_first(request) -> None:
        if "updated >=" not in request.args["jql"]:
            jira.changed["TES-1"] = edited
            jira.after_search = None

    jira.after_search = edit_first
    settings = Settings.from_env()
    sessions = session_factory(settings.database_url)
    summary = backfill_jira(sessions, settings.config, "TES", page_size=2, backoff=0.05)
    assert ledger(settings.database_url)["TES-4"] == ("on_time", None, date(2024, 5, 10))
    assert set(ledger(settings.database_url)) == {f"TES-{n}" for n in range(1, 6)}
    assert summary["items"] == 6  # TES-1 twice: it changed, so it is read again at the end


def test_more_than_a_page_in_one_minute_pages_on_within_it(env, jira, httpserver):
    # A bulk change: five issues updated in the same minute, pages of two. JQL cannot split the
    # minute, so within it the listing pages by number (each page vouched for by the one
    # before it) until it passes what it has read.
    jira.deployment = "Server"
    for n in range(11, 16):
        jira.extra.append(issue(f"TES-{n}", f"2024-05-20T10:00:{n:02d}.000+0000"))
    settings = Settings.from_env()
    sessions = session_factory(settings.database_url)
    summary = backfill_jira(sessions, settings.config, "TES", page_size=2, backoff=0.05)
    assert summary["items"] == 10
    with sessions() as session:
        keys = set(session.scalars(select(Item.key)))
    assert {f"jira:TES-{n}" for n in range(11, 16)} <= keys
    classic = [r for r, _ in httpserver.log if r.path == "/rest/api/2/search"]
    assert {r.args["startAt"] for r in classic} >= {"0", "2", "4"}
