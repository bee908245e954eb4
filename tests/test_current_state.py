"""The current state in every payload is evidence: a promise the payload states is not lost
because the delivery that made it never arrived (webhook installed after planning, or a failed
delivery). Signed deliveries through the Flask intake, a real RQ worker and a real Redis, read
back through the JSON API, on SQLite and PostgreSQL. docs/ledger.md, "Evidence from the current
state".
"""

from __future__ import annotations

import copy
from zoneinfo import ZoneInfo

import pytest

from connectors.github.history import item_history
from connectors.jira.history import issue_history
from ledger.rules import fold, settle
from tests import ledger_helpers as h
from tests.helpers import CLIENT_TOKEN, json_of
from tests.ledger_helpers import gh_issue, jira_resolved, post_github, post_jira

REPO = h.REPO  # team "platform", UTC, Jira project TES
MAY = {"from": "2019-05-01", "to": "2019-05-31"}
FEBRUARY = {"from": "2019-02-01", "to": "2019-03-31"}
OUTCOMES = {"delivered_early": 1, "delivered_on_time": 1, "delivered_late": 1}
UTC = ZoneInfo("UTC")


def deliver(client, settings, redis_conn, *posts) -> None:
    for post in posts:
        if isinstance(post, tuple):
            post_github(client, *post)
        else:
            post_jira(client, post)
    h.run_worker(settings, redis_conn)


def api(client, path: str, period: dict) -> dict:
    query = f"from={period['from']}&to={period['to']}"
    answer = client.get(f"{path}?{query}", headers={"Authorization": f"Bearer {CLIENT_TOKEN}"})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def commitments(client, period: dict, team: str = "platform") -> dict[str, dict]:
    body = api(client, f"/api/v1/teams/{team}/commitments", period)
    return {row["item"]: row for row in body["commitments"]}


def record(client, period: dict, team: str = "platform") -> dict:
    return api(client, f"/api/v1/teams/{team}/track-record", period)


def pr_merged_in_milestone(number: int, merged_at: str, due: str = "2019-05-23"):
    """`pull_request.closed` (merged), the real capture re-pointed at the platform team's
    repository and put in milestone 1 (no real merged PR with a milestone: SOURCES.md)."""
    doc = copy.deepcopy(json_of("github/pull_request.closed.merged.json"))
    doc["repository"]["full_name"] = REPO
    milestone = {**json_of("github/issues.opened.json")["issue"]["milestone"], "due_on": h.ms(due)}
    doc["pull_request"].update(
        number=number,
        body="",
        milestone=milestone,
        created_at="2019-05-10T09:00:00Z",
        merged_at=merged_at,
        closed_at=merged_at,
        updated_at=merged_at,
    )
    return "pull_request", doc


# Due 2019-05-23 (team "platform" is in UTC): a day before, on the day, two days after.
DAYS = [
    ("2019-05-22T10:00:00Z", "early", None),
    ("2019-05-23T18:00:00Z", "on_time", None),
    ("2019-05-25T10:00:00Z", "late", 2),
]


def check_settled(client, period: dict, keys: list[str], promised_at: list[str]) -> None:
    rows = commitments(client, period)
    assert sorted(rows) == sorted(keys)
    for key, (_, outcome, slip), at in zip(keys, DAYS, promised_at, strict=True):
        row = rows[key]
        assert (row["outcome"], row["slip_days"], row["promised_date"]) == (
            outcome,
            slip,
            "2019-05-23",
        ), key
        assert h.at(row["promised_at"]) == h.at(at)
    rec = record(client, period)
    assert {k: rec[k] for k in OUTCOMES} == OUTCOMES
    assert rec["unpromised_deliveries"] == 0


def test_a_pr_whose_only_delivery_is_the_merge_in_a_dated_milestone(client, settings, redis_conn):
    posts = [pr_merged_in_milestone(10 + n, merged) for n, (merged, _, _) in enumerate(DAYS)]
    deliver(client, settings, redis_conn, *posts)
    keys = [f"github:{REPO}#{10 + n}" for n in range(3)]
    # Promised when the payload shows it: at the merge (lead time counts from there).
    check_settled(client, MAY, keys, [merged for merged, _, _ in DAYS])


def test_an_issue_whose_only_delivery_is_the_close(client, settings, redis_conn):
    posts = [gh_issue("closed", closed, number=20 + n) for n, (closed, _, _) in enumerate(DAYS)]
    deliver(client, settings, redis_conn, *posts)
    keys = [f"github:{REPO}#{20 + n}" for n in range(3)]
    check_settled(client, MAY, keys, [closed for closed, _, _ in DAYS])


def test_a_jira_issue_whose_only_delivery_is_the_resolution(client, settings, redis_conn):
    # Jira fires the webhook a moment after the resolution: three seconds here.
    resolved_at = ["2019-02-19T10:00:00.000+0000", "2019-02-20T10:00:00.000+0000",
                   "2019-02-22T10:00:00.000+0000"]  # fmt: skip
    posts = []
    for n, at in enumerate(resolved_at):
        doc = jira_resolved(at, key=f"TES-{50 + n}", due="2019-02-20")
        doc["timestamp"] += 3000
        posts.append(doc)
    deliver(client, settings, redis_conn, *posts)
    rows = commitments(client, FEBRUARY)
    got = {key: (r["outcome"], r["slip_days"], r["promised_at"]) for key, r in rows.items()}
    assert got == {
        f"jira:TES-{50 + n}": (outcome, slip, h.at(at).isoformat())
        for n, ((_, outcome, slip), at) in enumerate(zip(DAYS, resolved_at, strict=True))
    }
    rec = record(client, FEBRUARY)
    assert ({k: rec[k] for k in OUTCOMES}, rec["unpromised_deliveries"]) == (OUTCOMES, 0)


@pytest.mark.parametrize("order", [1, -1])
def test_a_milestone_attached_after_the_close_is_not_a_commitment(
    client, settings, redis_conn, order
):
    closed = gh_issue("closed", "2019-05-20T10:00:00Z", due=None)
    filed = gh_issue(
        "milestoned",
        "2019-05-21T10:00:00Z",
        state="closed",
        closed_at="2019-05-20T10:00:00Z",
        state_reason="completed",
    )
    deliver(client, settings, redis_conn, *[closed, filed][::order])
    assert commitments(client, MAY) == {}
    rec = record(client, MAY)
    assert (rec["commitments_due"], rec["unpromised_deliveries"]) == (0, 1)


def test_a_payload_without_milestone_withdraws_nothing(client, settings, redis_conn):
    # Promised at opening; a later label change shows no milestone (the demilestoned delivery,
    # if there was one, never came); the close shows none either. The promise stands: late.
    labeled = gh_issue("labeled", "2019-05-18T10:00:00Z", due=None)
    closed = gh_issue("closed", "2019-05-25T10:00:00Z", due=None)
    deliver(
        client, settings, redis_conn, gh_issue("opened", "2019-05-15T15:20:18Z"), labeled, closed
    )
    row = commitments(client, MAY)[f"github:{REPO}#1"]
    assert (row["outcome"], row["slip_days"]) == ("late", 2)


def test_a_later_arriving_older_event_still_wins(client, settings, redis_conn):
    merged = pr_merged_in_milestone(2, "2019-05-22T10:00:00Z")
    deliver(client, settings, redis_conn, merged)
    row = commitments(client, MAY)[f"github:{REPO}#2"]
    assert (row["outcome"], h.at(row["promised_at"])) == ("early", h.at("2019-05-22T10:00:00Z"))
    # The planning delivery (octokit's issues.milestoned of #2) arrives late, e.g. redelivered.
    deliver(client, settings, redis_conn, ("issues", json_of("github/issues.milestoned.json")))
    row = commitments(client, MAY)[f"github:{REPO}#2"]
    assert (row["outcome"], h.at(row["promised_at"])) == ("early", h.at("2019-05-15T15:20:35Z"))
    assert (row["first_promised"], row["repromise_count"]) == ("2019-05-23", 0)


def jira_sprint_item(key: str, resolved: str, end: str) -> dict:
    """Planned into an active sprint at creation, resolved at `resolved`: one delivery each."""
    created = h.jira_created("2019-02-10T10:00:00.000+0000", key=key, due=None)
    created["issue"]["fields"]["customfield_10020"] = [
        {"id": 9, "state": "active", "name": "Sprint 9", "boardId": 1, "endDate": end}
    ]
    done = jira_resolved(resolved, key=key, due=None)
    done["issue"]["fields"]["customfield_10020"] = created["issue"]["fields"]["customfield_10020"]
    return created, done


def test_a_jira_sprint_ends_on_the_team_s_calendar_day(client, settings, redis_conn):
    # Sprint 9 ends at 23:30 UTC on 21 February, which is 22 February in Berlin (team "web",
    # project KT) and still the 21st in UTC (team "platform", project TES). Both issues are
    # resolved at 10:00 UTC on the 22nd.
    end, resolved = "2019-02-21T23:30:00.000Z", "2019-02-22T10:00:00.000+0000"
    deliver(
        client,
        settings,
        redis_conn,
        *jira_sprint_item("KT-5", resolved, end),
        *jira_sprint_item("TES-5", resolved, end),
    )
    berlin = commitments(client, FEBRUARY, team="web")["jira:KT-5"]
    utc = commitments(client, FEBRUARY)["jira:TES-5"]
    assert (berlin["promised_date"], berlin["outcome"]) == ("2019-02-22", "on_time")
    assert (utc["promised_date"], utc["outcome"], utc["slip_days"]) == ("2019-02-21", "late", 1)


# Backfill replays history as the payloads GitHub and Jira would have sent then: each must show
# the item as it stood at that moment, or today's milestone would promise what was filed later.

MILESTONE = {"number": 1, "title": "v1.0", "state": "open", "due_on": "2024-05-10T07:00:00Z"}


def rest_issue(**fields) -> dict:
    issue = {
        "number": 7,
        "title": "Filed after the fact",
        "user": {"login": "octocat"},
        "labels": [],
        "state": "closed",
        "state_reason": "completed",
        "milestone": MILESTONE,
        "created_at": "2024-05-01T09:00:00Z",
        "updated_at": "2024-05-12T10:00:00Z",
        "closed_at": "2024-05-08T10:00:00Z",
        "author_association": "MEMBER",
        "body": "",
    }
    return {**issue, **fields}


def entry(kind: str, at: str, **extra) -> dict:
    return {"event": kind, "created_at": at, "actor": {"login": "octocat"}, **extra}


def backfilled(issue: dict, *timeline: dict):
    events = item_history(REPO, issue, list(timeline), {"v1.0": MILESTONE}).events
    return settle(fold(events, UTC), h.at("2024-06-30T00:00:00Z"), UTC)


def test_github_backfill_uses_the_milestone_as_it_stood():
    # Closed on the 8th, filed under v1.0 on the 12th: today the issue shows v1.0, but the close
    # did not, so it is an unpromised win, not an early delivery.
    filed = backfilled(
        rest_issue(),
        entry("closed", "2024-05-08T10:00:00Z", state_reason="completed"),
        entry("milestoned", "2024-05-12T10:00:00Z", milestone={"title": "v1.0"}),
    )
    assert (filed.outcome.value, filed.committed) == ("unpromised", False)
    # In v1.0 from the 2nd, out of it on the 4th, back in it after the close: descoped.
    moved = backfilled(
        rest_issue(),
        entry("milestoned", "2024-05-02T10:00:00Z", milestone={"title": "v1.0"}),
        entry("demilestoned", "2024-05-04T10:00:00Z", milestone={"title": "v1.0"}),
        entry("closed", "2024-05-08T10:00:00Z", state_reason="completed"),
        entry("milestoned", "2024-05-12T10:00:00Z", milestone={"title": "v1.0"}),
    )
    assert moved.outcome.value == "descoped"
    # Still in it at the close: early, promised when it was milestoned.
    kept = backfilled(
        rest_issue(updated_at="2024-05-08T10:00:00Z"),
        entry("milestoned", "2024-05-02T10:00:00Z", milestone={"title": "v1.0"}),
        entry("closed", "2024-05-08T10:00:00Z", state_reason="completed"),
    )
    assert (kept.outcome.value, kept.promised_at) == ("early", h.at("2024-05-02T10:00:00Z"))


def test_jira_backfill_uses_the_fields_as_they_stood():
    # Resolved on 16 Feb, its due date set an hour later: today's fields show both.
    issue = copy.deepcopy(jira_resolved("2019-02-16T03:15:40.000+0000")["issue"])
    issue["fields"].update(duedate="2019-02-20", created="2019-02-16T03:01:52.000+0000")
    issue["changelog"] = {
        "histories": [
            {
                "id": "1",
                "created": "2019-02-16T03:15:40.000+0000",
                "items": [
                    {"field": "resolution", "from": None, "to": "10000", "toString": "Done"},
                    {"field": "status", "from": "3", "fromString": "In Progress",
                     "to": "10001", "toString": "Done"},
                ],
            },
            {
                "id": "2",
                "created": "2019-02-16T04:15:40.000+0000",
                "items": [{"field": "duedate", "fieldId": "duedate", "from": None,
                           "to": "2019-02-20"}],
            },
        ]
    }  # fmt: skip
    events = issue_history(issue)
    result = settle(fold(events, UTC), h.at("2019-03-31T00:00:00Z"), UTC)
    assert (result.outcome.value, result.committed) == ("unpromised", False)


def test_jira_backfill_and_webhooks_name_a_fix_version_by_the_same_site_scope():
    # The REST issue's fix version as the changelog names it (no self link): the issue's own
    # self says the site, as it does for the webhook payload of the same issue.
    doc = jira_resolved("2019-02-16T03:15:40.000+0000", due=None)
    doc["issue"]["fields"]["fixVersions"] = [{"id": "10001", "name": "v2"}]
    issue = copy.deepcopy(doc["issue"])
    issue["fields"]["created"] = "2019-02-16T03:01:52.000+0000"
    backfilled = {e.scope for e in issue_history(issue) if e.scope}
    assert backfilled == {"jira:some-instance-test.atlassian.net/version/10001"}
    from connectors.jira.normalize import normalize

    assert {e.scope for e in normalize(doc) if e.scope} == backfilled
