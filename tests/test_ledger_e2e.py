"""Each outcome end to end: signed deliveries through the Flask intake, a real RQ worker and a
real Redis, into the `commitments` rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from ledger import store
from tests import ledger_helpers as h
from tests.conftest import CONFIG_TOML
from tests.ledger_helpers import at, gh_issue, jira_created, jira_resolved, post_github, post_jira
from trackrecord.db import session_factory
from workers.jobs import settle_overdue_job

ISSUE = "github:Codertocat/Hello-World#1"
TES = "jira:TES-41"
OPENED = "2019-05-15T15:20:18Z"  # created_at of the octokit sample, born in milestone 1


def deliver(client, settings, redis_conn, *posts) -> dict[str, dict]:
    for post in posts:
        if isinstance(post, tuple):
            post_github(client, *post)
        else:
            post_jira(client, post)
    h.run_worker(settings, redis_conn)
    return h.commitments(settings)


@pytest.fixture
def latest_basis(monkeypatch, tmp_path, env):
    """The same teams, judged against the latest promise."""
    path = tmp_path / "latest.toml"
    path.write_text(
        CONFIG_TOML.replace('timezone = "UTC"\n', 'timezone = "UTC"\non_time_basis = "latest"\n', 1)
    )
    monkeypatch.setenv("TRACKRECORD_CONFIG", str(path))


@pytest.mark.parametrize(
    ("closed", "reason", "outcome", "slip"),
    [
        ("2019-05-20T10:00:00Z", "completed", "early", None),
        ("2019-05-23T22:00:00Z", "completed", "on_time", None),
        ("2019-05-26T09:00:00Z", "completed", "late", 3),
        ("2019-05-20T10:00:00Z", "not_planned", "dropped", None),
    ],
)
def test_github_issue_settles(client, settings, redis_conn, closed, reason, outcome, slip):
    rows = deliver(
        client,
        settings,
        redis_conn,
        gh_issue("opened", OPENED),
        gh_issue("closed", closed, state_reason=reason),
    )
    row = rows[ISSUE]
    assert (row["outcome"], row["slip_days"]) == (outcome, slip)
    assert row["promised_date"] == row["first_promised"] == date(2019, 5, 23)
    assert row["promised_at"] == at(OPENED)
    assert row["deadline"] == at("2019-05-24T00:00:00Z")
    assert row["settled_at"] == at(closed)
    assert row["delivered_at"] == (None if outcome == "dropped" else at(closed))
    assert (row["team"], row["client"], row["excluded"]) == ("platform", "acme", False)


def test_github_demilestoned_before_deadline_is_descoped(client, settings, redis_conn):
    rows = deliver(
        client,
        settings,
        redis_conn,
        ("issues", h.json_of("github/issues.milestoned.json")),
        ("issues", h.json_of("github/issues.demilestoned.json")),
    )
    row = rows["github:Codertocat/Hello-World#2"]
    assert (row["outcome"], row["first_promised"]) == ("descoped", date(2019, 5, 23))
    assert row["settled_at"] == at("2019-05-15T15:20:35Z")
    scope = "github:Codertocat/Hello-World/milestone/1"
    assert h.promise_changes(settings, "github:Codertocat/Hello-World#2") == [
        (at("2019-05-15T15:20:35Z"), date(2019, 5, 23), scope),
        (at("2019-05-15T15:20:35Z"), None, scope),
    ]


def test_github_open_past_deadline_is_missed_by_settle_overdue(client, settings, redis_conn):
    due = date.today() + timedelta(days=10)
    rows = deliver(client, settings, redis_conn, gh_issue("opened", OPENED, due=due.isoformat()))
    assert rows[ISSUE]["outcome"] == "pending"
    deadline = rows[ISSUE]["deadline"]
    assert settle_overdue_job() == 0  # nothing is due yet
    with session_factory(settings.database_url)() as s, s.begin():
        assert store.settle_overdue(s, deadline + timedelta(seconds=1)) == 1
    row = h.commitments(settings)[ISSUE]
    assert (row["outcome"], row["settled_at"], row["slip_days"]) == ("missed", deadline, None)


REPROMISE = [
    gh_issue("opened", OPENED),
    h.gh_milestone_due("2019-05-20T12:00:00Z", "2019-05-30"),
    gh_issue("closed", "2019-05-28T09:00:00Z", due="2019-05-30"),
]


def test_github_repromise_is_judged_against_the_first_promise(client, settings, redis_conn):
    row = deliver(client, settings, redis_conn, *REPROMISE)[ISSUE]
    assert (row["outcome"], row["slip_days"], row["promised_date"]) == (
        "late",
        5,
        date(2019, 5, 23),
    )
    assert (row["first_promised"], row["latest_promised"]) == (date(2019, 5, 23), date(2019, 5, 30))
    assert row["repromise_count"] == 1
    assert [c[1] for c in h.promise_changes(settings, ISSUE)] == [
        date(2019, 5, 23),
        date(2019, 5, 30),
    ]


def test_github_repromise_with_latest_basis(latest_basis, client, settings, redis_conn):
    row = deliver(client, settings, redis_conn, *REPROMISE)[ISSUE]
    assert (row["outcome"], row["slip_days"], row["promised_date"]) == (
        "early",
        None,
        date(2019, 5, 30),
    )
    assert row["first_promised"] == date(2019, 5, 23)
    assert row["deadline"] == at("2019-05-31T00:00:00Z")


def test_github_unpromised_win(client, settings, redis_conn):
    rows = deliver(client, settings, redis_conn, ("issues", h.json_of("github/issues.closed.json")))
    row = rows["github:Pritesh-30/test-repo#8"]
    assert (row["outcome"], row["promised_date"], row["deadline"]) == ("unpromised", None, None)
    assert row["delivered_at"] == at("2026-01-31T08:11:37Z")


def test_github_open_unpromised_item_has_no_commitment(client, settings, redis_conn):
    assert deliver(client, settings, redis_conn, gh_issue("opened", OPENED, due=None)) == {}
    assert h.items(settings)[ISSUE]["status"] == "open"


def test_pull_request_closing_an_issue_delivers_it_once(client, settings, redis_conn):
    issue, pr = f"github:{h.WEB_REPO}#111", f"github:{h.WEB_REPO}#117"
    merged = "2020-03-23T06:46:56Z"
    rows = deliver(
        client,
        settings,
        redis_conn,
        gh_issue(
            "opened",
            "2020-03-20T10:00:00Z",
            number=111,
            due="2020-03-25",
            repo=h.WEB_REPO,
            created_at="2020-03-20T10:00:00Z",
        ),
        h.gh_pr_merged(merged),
        # GitHub closes the issue itself a moment later: the first close wins.
        gh_issue("closed", "2020-03-23T06:47:01Z", number=111, due="2020-03-25", repo=h.WEB_REPO),
    )
    assert (rows[issue]["outcome"], rows[issue]["delivered_at"]) == ("early", at(merged))
    assert (rows[pr]["outcome"], rows[pr]["promised_date"]) == ("linked", None)
    assert [k for k, r in rows.items() if r["promised_date"] is not None] == [issue]
    items = h.items(settings)
    assert (items[pr]["links"], items[issue]["links"]) == ([issue], [pr])
    assert rows[issue]["team"] == "web"


def test_pull_request_naming_a_jira_key_delivers_it_for_its_own_team(client, settings, redis_conn):
    rows = deliver(
        client,
        settings,
        redis_conn,
        jira_created("2019-02-16T03:01:52.000+0000"),
        h.gh_pr_merged("2019-02-18T10:00:00Z", body="", title="TES-41 fix the summary"),
    )
    assert (rows[TES]["outcome"], rows[TES]["team"]) == ("early", "platform")
    assert rows[f"github:{h.WEB_REPO}#117"]["outcome"] == "linked"


def test_first_response_of_an_outside_issue(client, settings, redis_conn):
    outsider = {"user": {"login": "stranger"}, "author_association": "NONE"}
    deliver(
        client,
        settings,
        redis_conn,
        gh_issue("opened", OPENED, **outsider),
        h.gh_comment("2019-05-15T16:00:00Z", "somebody", "NONE"),
        h.gh_comment("2019-05-15T17:20:18Z", "Codertocat", "OWNER"),
    )
    assert h.items(settings)[ISSUE]["first_response_seconds"] == 7200


CREATED = "2019-02-16T03:01:52.000+0000"


@pytest.mark.parametrize(
    ("resolved", "resolution", "outcome", "slip"),
    [
        ("2019-02-18T10:00:00.000+0000", "Done", "early", None),
        ("2019-02-20T10:00:00.000+0000", "Done", "on_time", None),
        ("2019-02-23T10:00:00.000+0000", "Done", "late", 3),
        ("2019-02-18T10:00:00.000+0000", "Won't Do", "dropped", None),
    ],
)
def test_jira_issue_settles(client, settings, redis_conn, resolved, resolution, outcome, slip):
    rows = deliver(
        client,
        settings,
        redis_conn,
        jira_created(CREATED),
        jira_resolved(resolved, resolution=resolution),
    )
    row = rows[TES]
    assert (row["outcome"], row["slip_days"], row["promised_date"]) == (
        outcome,
        slip,
        date(2019, 2, 20),
    )
    assert row["promised_at"] == at(CREATED)
    assert row["settled_at"] == at(resolved)


def test_jira_due_date_cleared_is_descoped(client, settings, redis_conn):
    cleared = "2019-02-18T10:00:00.000+0000"
    rows = deliver(
        client,
        settings,
        redis_conn,
        jira_created(CREATED),
        h.jira_due_changed(cleared, "2019-02-20", None),
    )
    assert (rows[TES]["outcome"], rows[TES]["settled_at"]) == ("descoped", at(cleared))


def test_jira_open_past_due_is_missed_by_settle_overdue(client, settings, redis_conn):
    due = date.today() + timedelta(days=3)
    rows = deliver(client, settings, redis_conn, jira_created(CREATED, due=due.isoformat()))
    assert rows[TES]["outcome"] == "pending"
    with session_factory(settings.database_url)() as s, s.begin():
        store.settle_overdue(s, rows[TES]["deadline"])
    assert h.commitments(settings)[TES]["outcome"] == "missed"


JIRA_REPROMISE = [
    jira_created(CREATED),
    h.jira_due_changed("2019-02-18T10:00:00.000+0000", "2019-02-20", "2019-02-25"),
    jira_resolved("2019-02-23T10:00:00.000+0000", due="2019-02-25"),
]


def test_jira_repromise_first_and_latest(client, settings, redis_conn):
    row = deliver(client, settings, redis_conn, *JIRA_REPROMISE)[TES]
    assert (row["outcome"], row["slip_days"], row["repromise_count"]) == ("late", 3, 1)
    assert row["latest_promised"] == date(2019, 2, 25)


def test_jira_repromise_with_latest_basis(latest_basis, client, settings, redis_conn):
    row = deliver(client, settings, redis_conn, *JIRA_REPROMISE)[TES]
    assert (row["outcome"], row["promised_date"]) == ("early", date(2019, 2, 25))


def test_jira_unpromised_win(client, settings, redis_conn):
    rows = deliver(
        client,
        settings,
        redis_conn,
        jira_created(CREATED, due=None),
        jira_resolved("2019-02-18T10:00:00.000+0000", due=None),
    )
    assert (rows[TES]["outcome"], rows[TES]["promised_date"]) == ("unpromised", None)


def version_updated(when: str, release: str) -> dict:
    # No real capture exists (SOURCES.md); the shape follows Atlassian's webhook docs.
    return {
        "timestamp": h.jira_ms(when),
        "webhookEvent": "jira:version_updated",
        "version": {
            "self": "https://some-instance-test.atlassian.net/rest/api/2/version/10000",
            "id": "10000",
            "name": "d",
            "releaseDate": release,
            "projectId": 10001,
        },
    }


def kt22_stream() -> list:
    version = [{"id": "10000", "name": "d", "releaseDate": "2019-09-10"}]
    created = jira_created(
        "2019-08-27T12:43:24.193-0700", key="KT-22", due=None, fixVersions=version
    )
    return [created, version_updated("2019-09-01T10:00:00.000+0000", "2019-09-20")]


@pytest.mark.parametrize("order", [1, -1])
def test_jira_version_date_change_fans_out_in_any_order(client, settings, redis_conn, order):
    rows = deliver(client, settings, redis_conn, *kt22_stream()[::order])
    row = rows["jira:KT-22"]
    assert (row["first_promised"], row["latest_promised"]) == (date(2019, 9, 10), date(2019, 9, 20))
    assert (row["team"], row["repromise_count"], row["outcome"]) == ("web", 1, "missed")


def full_stream() -> list:
    """Several items, every kind of change, in event-time order."""
    outsider = {"user": {"login": "stranger"}, "author_association": "NONE"}
    return [
        gh_issue("opened", OPENED, **outsider),
        ("issues", h.json_of("github/issues.milestoned.json")),
        ("issues", h.json_of("github/issues.demilestoned.json")),
        gh_issue(
            "opened", "2019-05-16T08:00:00Z", number=3, due=None, created_at="2019-05-16T08:00:00Z"
        ),
        gh_issue("milestoned", "2019-05-17T08:00:00Z", number=3),
        h.gh_comment("2019-05-17T09:00:00Z", "Codertocat", "OWNER"),
        h.gh_milestone_due("2019-05-20T12:00:00Z", "2019-05-30"),
        h.gh_pr_merged("2019-05-22T08:00:00Z", number=4, body="Fixes #3", repo=h.REPO),
        gh_issue("closed", "2019-05-28T09:00:00Z", due="2019-05-30", **outsider),
        gh_issue(
            "reopened",
            "2019-05-29T09:00:00Z",
            due="2019-05-30",
            closed_at="2019-05-28T09:00:00Z",
            **outsider,
        ),
        gh_issue("closed", "2019-06-02T09:00:00Z", due="2019-05-30", **outsider),
        jira_created(CREATED),
        h.jira_due_changed("2019-02-18T10:00:00.000+0000", "2019-02-20", "2019-02-25"),
        jira_resolved("2019-02-23T10:00:00.000+0000", due="2019-02-25"),
        *kt22_stream(),
    ]


def test_any_order_with_duplicates_gives_the_same_ledger(client, settings, redis_conn):
    stream = full_stream()
    shuffled = stream[:]
    random.Random(7).shuffle(shuffled)
    results = []
    for n, order in enumerate([stream, stream[::-1], shuffled]):
        wipe(settings)
        # Each delivery twice under different ids (a re-sent event), once more under the same id.
        posts = [(p, f"{n}-{i}-{copy}") for copy in "ab" for i, p in enumerate(order)]
        posts.append(posts[0])
        for post, delivery in posts:
            if isinstance(post, tuple):
                post_github(client, *post, delivery=delivery)
            else:
                post_jira(client, post, delivery=delivery)
        h.run_worker(settings, redis_conn)
        changes = {k: h.promise_changes(settings, k) for k in h.items(settings)}
        results.append((h.commitments(settings), h.items(settings), changes))
    assert results[0] == results[1] == results[2]
    rows, items, _ = results[0]
    assert rows[ISSUE]["outcome"] == "late"  # reopened; the second close counts
    assert (rows[ISSUE]["slip_days"], rows[ISSUE]["repromise_count"]) == (10, 1)
    assert rows["github:Codertocat/Hello-World#3"]["outcome"] == "early"
    assert rows["github:Codertocat/Hello-World#3"]["latest_promised"] == date(2019, 5, 30)
    assert rows["github:Codertocat/Hello-World#2"]["outcome"] == "descoped"
    assert rows[TES]["outcome"] == "late"
    # Opened by an outsider, answered by the OWNER two days later; #3 was opened by the team.
    assert (
        items[ISSUE]["first_response_seconds"]
        == (at("2019-05-17T09:00:00Z") - at(OPENED)).total_seconds()
    )
    assert items["github:Codertocat/Hello-World#3"]["first_response_seconds"] is None


def wipe(settings) -> None:
    from sqlalchemy import delete

    from ledger.tables import Item, ScopeEvent, TeamMember
    from trackrecord.models import Delivery

    with session_factory(settings.database_url)() as s, s.begin():
        for model in (Item, ScopeEvent, TeamMember, Delivery):
            s.execute(delete(model))


def jira_comment(at: str, author: str, *, key: str = "TES-41") -> dict:
    """A comment_created delivery as Jira Cloud sends it (trimmed issue, the comment's author)."""
    return {
        "timestamp": h.jira_ms(at),
        "webhookEvent": "comment_created",
        "comment": {"id": f"c-{author}", "author": {"accountId": author}, "created": at},
        "issue": {"id": "10040", "key": key, "fields": {"project": {"key": key.split("-")[0]}}},
    }


def test_jira_first_response_counts_the_configured_members(
    client, settings, redis_conn, monkeypatch, tmp_path
):
    # Jira payloads do not say who is on the team, so the team's `members` setting does.
    path = tmp_path / "members.toml"
    path.write_text(
        CONFIG_TOML.replace('jira = ["TES"]\n', 'jira = ["TES"]\nmembers = ["teammate-1"]\n', 1)
    )
    monkeypatch.setenv("TRACKRECORD_CONFIG", str(path))
    deliver(
        client,
        settings,
        redis_conn,
        jira_created("2019-02-15T10:00:00+00:00"),  # reported by "admin", not a member
        jira_comment("2019-02-15T11:00:00+00:00", "outsider-9"),
        jira_comment("2019-02-15T13:30:00+00:00", "teammate-1"),
    )
    assert h.items(settings)[TES]["first_response_seconds"] == 3.5 * 3600


def undated(kind: str, doc: dict) -> tuple[str, dict]:
    """The milestone of a delivery without a due date, as GitHub sends a milestone just made."""
    for milestone in (doc.get("milestone"), doc["issue"].get("milestone")):
        if milestone:
            milestone["due_on"] = None
    return kind, doc


@pytest.mark.parametrize("order", ["in order", "date first"])
def test_a_date_set_on_a_milestone_later_promises_its_items(client, settings, redis_conn, order):
    # Plan first, date later: filed into an undated milestone on the 15th, the milestone gets
    # its due date on the 20th, the issue is closed on the 22nd, a day before it.
    posts = [
        gh_issue("opened", OPENED, due=None),
        undated(*gh_issue("milestoned", "2019-05-15T16:00:00Z")),
        h.gh_milestone_due("2019-05-20T12:00:00Z", "2019-05-23"),
        gh_issue("closed", "2019-05-22T10:00:00Z"),
    ]
    if order == "date first":
        posts = [posts[2], posts[0], posts[3], posts[1]]
    rows = deliver(client, settings, redis_conn, *posts)
    assert (rows[ISSUE]["outcome"], rows[ISSUE]["promised_date"]) == ("early", date(2019, 5, 23))
    # The promise was made when the date was set, not when the issue was filed.
    assert h.at("2019-05-20T12:00:00Z") == rows[ISSUE]["promised_at"]


def test_a_started_sprint_promises_the_issues_planned_into_it(client, settings, redis_conn):
    sprint = {"id": 7, "state": "future", "name": "Sprint 7", "boardId": 1}
    created = jira_created("2019-02-10T10:00:00+00:00", due=None)
    created["issue"]["fields"]["customfield_10020"] = [sprint]
    started = {
        "timestamp": h.jira_ms("2019-02-11T09:00:00+00:00"),
        "webhookEvent": "sprint_started",
        "sprint": {**sprint, "state": "active", "startDate": "2019-02-11T09:00:00.000Z",
                   "endDate": "2019-02-22T17:00:00.000Z",
                   "self": "https://some-instance-test.atlassian.net/rest/agile/1.0/sprint/7"},
    }  # fmt: skip
    rows = deliver(client, settings, redis_conn, created, started)
    # Promised when the sprint started, for its last day; that day is long past, so: missed.
    assert (rows[TES]["outcome"], rows[TES]["promised_date"]) == ("missed", date(2019, 2, 22))
    assert rows[TES]["promised_at"] == h.at("2019-02-11T09:00:00+00:00")


def pr_milestoned(at: str, *, number: int, due: str) -> tuple[str, dict]:
    """`pull_request.milestoned` for a PR of the platform team's repository."""
    _, doc = h.gh_pr_merged(at, number=number, repo=h.REPO)
    pr = doc["pull_request"]
    pr.update(state="open", merged=False, merged_at=None, closed_at=None)
    milestone = {**h.json_of("github/issues.milestoned.json")["milestone"], "due_on": h.ms(due)}
    pr["milestone"] = doc["milestone"] = milestone
    doc["action"] = "milestoned"
    return "pull_request", doc


@pytest.mark.parametrize("order", ["issue first", "pr first"])
def test_a_pr_in_the_milestone_of_the_issue_it_closes_is_not_a_second_commitment(
    client, settings, redis_conn, order
):
    issue = [gh_issue("opened", OPENED), gh_issue("milestoned", "2019-05-15T16:00:00Z")]
    pr = [
        pr_milestoned("2019-05-16T10:00:00Z", number=2, due="2019-05-23"),
        h.gh_pr_merged("2019-05-20T10:00:00Z", number=2, body="Fixes #1", repo=h.REPO),
    ]
    rows = deliver(
        client, settings, redis_conn, *(issue + pr if order == "issue first" else pr + issue)
    )
    assert rows[ISSUE]["outcome"] == "early"
    assert rows["github:Codertocat/Hello-World#2"]["outcome"] == "linked"
    promises = [k for k, r in rows.items() if r["outcome"] not in ("linked", "unpromised")]
    assert promises == [ISSUE]


def test_deleting_an_overdue_milestone_does_not_turn_misses_into_descopes(
    client, settings, redis_conn
):
    # Milestone due 2019-05-23, last edited on 05-16; deleted long after its deadline. The
    # payload has no deletion time (updated_at is the last edit), so the deletion is dated by
    # its arrival: the promise was already broken, and stays a miss.
    kind, deletion = h.gh_milestone_due("2019-05-16T09:00:00Z", "2019-05-23")
    deletion["action"] = "deleted"
    deletion.pop("changes")
    rows = deliver(
        client,
        settings,
        redis_conn,
        gh_issue("opened", OPENED),
        gh_issue("milestoned", "2019-05-15T16:00:00Z"),
        (kind, deletion),
    )
    assert rows[ISSUE]["outcome"] == "missed"
