"""GitHub payloads → domain events → settlement, from the real fixtures in tests/fixtures/github.

Where no real payload exists (see SOURCES.md, "Gaps"), a test copies a fixture and edits one
field, and says which.
"""

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.github.normalize import GithubConfig, classify, normalize
from ledger.events import EventKind, linked_deliveries
from ledger.rules import Outcome, fold, settle

FIXTURES = Path(__file__).parent / "fixtures" / "github"
UTC_TZ = ZoneInfo("UTC")


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def closed_issue_1(closed_at: str, state_reason: str | None = "completed") -> dict:
    """Zulip's real issues.closed, re-pointed at Hello-World#1 with the v1.0 milestone."""
    payload = load("issues.closed")
    opened = load("issues.opened")
    payload["repository"] = opened["repository"]
    payload["issue"]["number"] = 1
    payload["issue"]["milestone"] = copy.deepcopy(opened["issue"]["milestone"])
    payload["issue"]["closed_at"] = payload["issue"]["updated_at"] = closed_at
    payload["issue"]["state_reason"] = state_reason
    return payload


def outcome_of(*deliveries: tuple[str, dict], now: str = "2019-06-30T00:00:00Z", tz=UTC_TZ):
    events = [e for name, payload in deliveries for e in normalize(name, payload)]
    state = fold(events, tz)
    return settle(state, datetime.fromisoformat(now), tz)


def test_opened_in_milestone_is_promised_at_creation_for_the_utc_date_of_due_on():
    opened, promised = normalize("issues", load("issues.opened"))
    assert opened.kind is EventKind.OPENED and opened.actor == "Codertocat"
    assert promised.kind is EventKind.PROMISE_SET
    assert promised.promised_date == date(2019, 5, 23)  # due_on 2019-05-23T07:00:00Z
    assert promised.at == datetime(2019, 5, 15, 15, 20, 18, tzinfo=UTC)
    assert promised.scope == "github:Codertocat/Hello-World/milestone/1"


def test_due_on_date_holds_west_of_utc_minus_7():
    # Honolulu sees due_on 07:00Z as 21:00 on the 22nd; the promise is still the 23rd.
    tz = ZoneInfo("Pacific/Honolulu")
    late_evening_23rd = "2019-05-24T09:00:00Z"  # 23:00 on the 23rd in Honolulu
    result = outcome_of(
        ("issues", load("issues.opened")),
        ("issues", closed_issue_1(late_evening_23rd)),
        tz=tz,
    )
    assert result.outcome is Outcome.ON_TIME


def test_issue_closed_on_due_day_is_on_time():
    result = outcome_of(
        ("issues", load("issues.opened")), ("issues", closed_issue_1("2019-05-23T18:00:00Z"))
    )
    assert (result.outcome, result.slip_days) == (Outcome.ON_TIME, 0)


def test_issue_closed_before_due_day_is_early():
    result = outcome_of(
        ("issues", load("issues.opened")), ("issues", closed_issue_1("2019-05-20T10:00:00Z"))
    )
    assert (result.outcome, result.slip_days) == (Outcome.EARLY, -3)


def test_issue_closed_two_days_after_due_day_is_late_with_slip_2():
    result = outcome_of(
        ("issues", load("issues.opened")), ("issues", closed_issue_1("2019-05-25T10:00:00Z"))
    )
    assert (result.outcome, result.slip_days) == (Outcome.LATE, 2)


def test_open_issue_past_its_deadline_is_missed_and_before_it_pending():
    opened = ("issues", load("issues.opened"))
    assert outcome_of(opened, now="2019-05-24T00:00:00Z").outcome is Outcome.MISSED
    assert outcome_of(opened, now="2019-05-23T23:59:59Z").outcome is Outcome.PENDING


def test_issue_closed_as_not_planned_is_dropped():
    closed = closed_issue_1("2019-05-20T10:00:00Z", state_reason="not_planned")
    result = outcome_of(("issues", load("issues.opened")), ("issues", closed))
    assert result.outcome is Outcome.DROPPED


def test_close_without_state_reason_counts_as_completed():
    closed = closed_issue_1("2019-05-20T10:00:00Z")
    del closed["issue"]["state_reason"]  # as in deliveries from before 2022
    [event] = normalize("issues", closed)
    assert event.kind is EventKind.DELIVERED


def test_pr_in_milestone_closed_unmerged_is_dropped():
    result = outcome_of(
        ("issues", load("issues.milestoned")),
        ("pull_request", load("pull_request.closed.not_merged")),
    )
    assert result.outcome is Outcome.DROPPED


def test_pr_demilestoned_in_the_same_second_it_was_milestoned_is_descoped():
    result = outcome_of(
        ("issues", load("issues.demilestoned")), ("issues", load("issues.milestoned"))
    )
    assert result.outcome is Outcome.DESCOPED


def test_issue_closed_without_milestone_is_an_unpromised_win():
    assert outcome_of(("issues", load("issues.closed"))).outcome is Outcome.UNPROMISED


def test_merged_pr_is_delivered_at_merged_at_and_reverts_is_no_closing_keyword():
    [event] = normalize("pull_request", load("pull_request.closed.merged"))
    assert event.kind is EventKind.DELIVERED
    assert event.at == datetime(2020, 3, 23, 6, 46, 56, tzinfo=UTC)
    # Body says "Reverts ...#111", branch is "issue-111-...": neither is a link.
    assert event.links == ()


def test_pr_that_fixes_an_issue_delivers_that_issue_and_is_not_a_second_win():
    payload = load("pull_request.closed.merged")
    payload["pull_request"]["body"] = "Fixes #111 and closes octo/other#5"
    [event] = normalize("pull_request", payload)
    assert event.links == (
        "github:octo/other#5",
        "github:robvanderleek/create-issue-branch#111",
    )
    issue_events = [e for e in linked_deliveries(event) if e.item_key.endswith("#111")]
    issue = fold(issue_events, UTC_TZ)
    assert (issue.status, issue.closed_at) == ("delivered", event.at)
    assert issue.links == ("github:robvanderleek/create-issue-branch#117",)
    pr = settle(fold([event], UTC_TZ), event.at, UTC_TZ)
    assert pr.outcome is Outcome.LINKED


def test_jira_keys_in_pr_title_and_branch_become_links():
    payload = load("pull_request.closed.merged")
    payload["pull_request"]["title"] = "PLAT-7: faster login (UTF-8 safe)"
    payload["pull_request"]["head"]["ref"] = "feature/PLAT-12-login"
    [event] = normalize("pull_request", payload)
    assert {"jira:PLAT-7", "jira:PLAT-12"} <= set(event.links)
    [limited] = normalize("pull_request", payload, GithubConfig(jira_projects=frozenset({"PLAT"})))
    assert limited.links == ("jira:PLAT-12", "jira:PLAT-7")


def test_reopen_is_dated_by_updated_at_because_closed_at_keeps_the_old_close():
    [event] = normalize("issues", load("issues.reopened"))
    assert event.kind is EventKind.REOPENED
    assert event.at == datetime(2021, 10, 11, 16, 40, 56, tzinfo=UTC)


def test_size_label_sets_size():
    payload = load("issues.opened")
    payload["action"] = "labeled"
    payload["issue"]["labels"].append({"name": "size:S"})
    [event] = normalize("issues", payload)
    assert (event.kind, event.size) == (EventKind.UPDATED, "S")


def test_comment_created_is_recorded_with_its_author_and_time():
    payload = load("issues.opened")
    payload["action"] = "created"
    payload["comment"] = {"user": {"login": "octocat"}, "created_at": "2019-05-15T16:00:00Z"}
    [event] = normalize("issue_comment", payload)
    assert (event.kind, event.actor) == (EventKind.COMMENTED, "octocat")
    assert event.at == datetime(2019, 5, 15, 16, 0, tzinfo=UTC)


def test_milestone_due_change_is_keyed_by_milestone_and_re_promises_its_items():
    payload = load("milestone.created")
    payload["action"] = "edited"
    payload["changes"] = {"due_on": {"from": "2019-05-23T07:00:00Z"}}
    payload["milestone"]["due_on"] = "2019-05-30T07:00:00Z"
    payload["milestone"]["updated_at"] = "2019-05-20T09:00:00Z"
    [changed] = normalize("milestone", payload)
    assert changed.kind is EventKind.MILESTONE_DUE_CHANGED
    assert changed.item_key == changed.scope == "github:Codertocat/Hello-World/milestone/1"
    assert changed.promised_date == date(2019, 5, 30)
    events = normalize("issues", load("issues.opened")) + [
        changed.retarget("github:Codertocat/Hello-World#1")
    ]
    state = fold(events, UTC_TZ)
    assert (state.first_promised, state.latest_promised) == (date(2019, 5, 23), date(2019, 5, 30))


def test_milestone_edit_without_due_change_emits_nothing():
    payload = load("milestone.created")
    payload["action"] = "edited"
    payload["changes"] = {"title": {"from": "v0.9"}}
    assert normalize("milestone", payload) == []


def test_ignored_and_unknown_pairs_emit_nothing():
    assert normalize("milestone", load("milestone.created")) == []
    assert normalize("milestone", load("milestone.closed")) == []
    assert normalize("ping", load("ping")) == []
    assert classify("milestone", "closed") == "ignored"
    assert classify("ping", None) == "ignored"
    assert classify("issues", "closed") == "routed"
    assert classify("deployment", "created") == "unknown"


def test_an_issue_transferred_away_before_its_deadline_is_descoped_after_it_missed():
    # issues.transferred: the octokit `opened` sample as the old issue (no real capture).
    moved = load("issues.opened")
    moved["action"] = "transferred"
    before = GithubConfig(received_at=datetime(2019, 5, 20, 9, tzinfo=UTC))
    after = GithubConfig(received_at=datetime(2019, 6, 20, 9, tzinfo=UTC))
    opened = normalize("issues", load("issues.opened"))
    for cfg, expected in ((before, Outcome.DESCOPED), (after, Outcome.MISSED)):
        events = opened + normalize("issues", moved, cfg)
        state = fold(events, UTC_TZ)
        assert settle(state, datetime(2019, 6, 30, tzinfo=UTC), UTC_TZ).outcome is expected
