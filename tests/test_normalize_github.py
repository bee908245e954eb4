"""GitHub payloads → domain events → settlement, from the real fixtures in tests/fixtures/github.

Where no real payload exists (see SOURCES.md, "Gaps"), a test copies a fixture and edits one
field, and says which.
"""

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from connectors.github.normalize import ROUTING, GithubConfig, normalize
from connectors.routing import Decision
from connectors.shapes import InvalidPayload
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


def acted(events: list) -> list:
    """The action's own events, without the evidence read from the payload's current state."""
    return [e for e in events if e.snapshot]


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
    [event] = acted(normalize("issues", closed))
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
    [event] = acted(normalize("pull_request", load("pull_request.closed.merged")))
    assert event.kind is EventKind.DELIVERED
    assert event.at == datetime(2020, 3, 23, 6, 46, 56, tzinfo=UTC)
    # Body says "Reverts ...#111", branch is "issue-111-...": neither is a link.
    assert event.links == ()


def test_pr_that_fixes_an_issue_delivers_that_issue_and_is_not_a_second_win():
    payload = load("pull_request.closed.merged")
    payload["pull_request"]["body"] = "Fixes #111 and closes octo/other#5"
    [event] = acted(normalize("pull_request", payload))
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
    [event] = acted(normalize("pull_request", payload))
    assert {"jira:PLAT-7", "jira:PLAT-12"} <= set(event.links)
    cfg = GithubConfig(jira_projects=frozenset({"PLAT"}))
    [limited] = acted(normalize("pull_request", payload, cfg))
    assert limited.links == ("jira:PLAT-12", "jira:PLAT-7")


def test_reopen_is_dated_by_updated_at_because_closed_at_keeps_the_old_close():
    [event] = acted(normalize("issues", load("issues.reopened")))
    assert event.kind is EventKind.REOPENED
    assert event.at == datetime(2021, 10, 11, 16, 40, 56, tzinfo=UTC)


def test_size_label_sets_size():
    payload = load("issues.opened")
    payload["action"] = "labeled"
    payload["issue"]["labels"].append({"name": "size:S"})
    [event] = acted(normalize("issues", payload))
    assert (event.kind, event.size) == (EventKind.UPDATED, "S")


def test_comment_created_is_recorded_with_its_author_and_time():
    payload = load("issues.opened")
    payload["action"] = "created"
    payload["comment"] = {"user": {"login": "octocat"}, "created_at": "2019-05-15T16:00:00Z"}
    [event] = acted(normalize("issue_comment", payload))
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


def test_any_milestone_payload_states_its_due_date_and_an_undated_one_says_nothing():
    # created, closed, a title edit: the milestone's date as it stands (heals a lost `edited`).
    payload = load("milestone.created")
    payload["action"] = "edited"
    payload["changes"] = {"title": {"from": "v0.9"}}
    for doc in (payload, load("milestone.created"), load("milestone.closed")):
        [event] = normalize("milestone", doc)
        assert (event.kind, event.promised_date) == (
            EventKind.MILESTONE_DUE_CHANGED,
            date(2019, 5, 23),
        )
    # Without a date it withdraws nothing; only an edit of the date itself clears one.
    payload["milestone"]["due_on"] = None
    assert normalize("milestone", payload) == []
    payload["changes"] = {"due_on": {"from": "2019-05-23T07:00:00Z"}}
    [cleared] = normalize("milestone", payload)
    assert cleared.promised_date is None


def test_one_routing_table_decides_for_the_view_and_the_worker():
    assert normalize("ping", load("ping")) == []
    assert ROUTING.decide("ping", None) is Decision.IGNORE
    assert ROUTING.decide("issues", "closed") is Decision.HANDLE
    # Every action of an issue or pull request is read: the payload shows the item's state.
    for action in ("assigned", "synchronize", "labeled", "some_future_action"):
        assert ROUTING.decide("pull_request", action) is Decision.HANDLE
    assert ROUTING.decide("milestone", "closed") is Decision.HANDLE
    assert ROUTING.decide("deployment", "created") is Decision.UNSUPPORTED
    assert ROUTING.events == {"issues", "pull_request", "milestone", "issue_comment"}


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


# The current state in every payload is evidence (docs/ledger.md, "Evidence from the current
# state"): a lost planning delivery costs a timestamp, never the promise.


def merged_in_milestone(merged_at: str) -> dict:
    """The real merged PR (create-issue-branch#117), in the octokit v1.0 milestone (due 05-23),
    re-dated to 2019; no real merged PR with a milestone exists (SOURCES.md, "Gaps")."""
    payload = load("pull_request.closed.merged")
    pr = payload["pull_request"]
    pr["milestone"] = copy.deepcopy(load("issues.opened")["issue"]["milestone"])
    pr.update(created_at="2019-05-10T09:00:00Z", merged_at=merged_at, closed_at=merged_at)
    pr["updated_at"] = merged_at
    return payload


def test_a_merge_is_the_only_delivery_and_its_milestone_is_the_promise():
    for merged_at, expected in [
        ("2019-05-20T10:00:00Z", Outcome.EARLY),
        ("2019-05-23T18:00:00Z", Outcome.ON_TIME),
        ("2019-05-25T10:00:00Z", Outcome.LATE),
    ]:
        events = normalize("pull_request", merged_in_milestone(merged_at))
        result = settle(fold(events, UTC_TZ), datetime(2019, 6, 30, tzinfo=UTC), UTC_TZ)
        assert result.outcome is expected, merged_at
        # Promised at the merge: the payload proves the milestone stood then, no earlier.
        assert result.promised_at == datetime.fromisoformat(merged_at)
        assert result.first_promised == date(2019, 5, 23)
    kinds = sorted(e.kind for e in events)
    assert kinds == sorted([EventKind.OPENED, EventKind.PROMISE_SET, EventKind.DELIVERED])


def test_a_close_is_the_only_delivery_and_its_milestone_is_the_promise():
    result = outcome_of(("issues", closed_issue_1("2019-05-25T10:00:00Z")))
    assert (result.outcome, result.slip_days) == (Outcome.LATE, 2)
    assert result.promised_at == datetime(2019, 5, 25, 10, tzinfo=UTC)


def test_a_milestone_attached_after_the_close_is_still_not_a_commitment():
    # issues.milestoned as GitHub sends it for an issue closed two days before (the octokit
    # sample is a pull request's issue: made a plain issue here).
    filed = load("issues.milestoned")
    del filed["issue"]["pull_request"]
    filed["issue"].update(state="closed", closed_at="2019-05-13T10:00:00Z", state_reason=None)
    result = outcome_of(("issues", filed))
    assert (result.outcome, result.committed) == (Outcome.UNPROMISED, False)
    # The same for a pull request closed unmerged, which its issue shape says since 2022.
    filed = load("issues.milestoned")
    filed["issue"]["pull_request"]["merged_at"] = None
    filed["issue"].update(state="closed", closed_at="2019-05-13T10:00:00Z")
    assert outcome_of(("issues", filed)).outcome is Outcome.DROPPED
    assert not outcome_of(("issues", filed)).committed


def test_a_payload_without_milestone_withdraws_nothing():
    labeled = load("issues.opened")
    labeled.update(action="labeled", label={"name": "bug"})
    labeled["issue"].update(milestone=None, updated_at="2019-05-20T10:00:00Z")
    result = outcome_of(("issues", load("issues.opened")), ("issues", labeled))
    assert (result.outcome, result.first_promised) == (Outcome.MISSED, date(2019, 5, 23))


def test_an_undated_milestone_shown_withdraws_nothing_but_takes_a_later_date():
    undated = load("issues.opened")
    undated["action"] = "assigned"
    undated["issue"]["milestone"]["due_on"] = None
    undated["issue"]["updated_at"] = "2019-05-20T10:00:00Z"
    # Promised on the 23rd; a later payload shows the milestone without a date: still promised.
    result = outcome_of(("issues", load("issues.opened")), ("issues", undated))
    assert result.outcome is Outcome.MISSED
    # Only the undated sighting: the item is in the milestone, and its date set later applies.
    undated["issue"]["created_at"] = "2019-05-20T09:00:00Z"
    dated = load("milestone.created")
    dated.update(action="edited", changes={"due_on": {"from": None}})
    dated["milestone"]["updated_at"] = "2019-05-21T09:00:00Z"
    [due] = normalize("milestone", dated)
    events = normalize("issues", undated) + [due.retarget("github:Codertocat/Hello-World#1")]
    state = fold(events, UTC_TZ)
    assert (state.promise, state.promised_at) == (date(2019, 5, 23), due.at)


def test_a_later_arriving_older_event_still_wins_by_event_time():
    milestoned = load("issues.milestoned")  # Hello-World#2, milestoned 2019-05-15T15:20:35Z
    merged = ("pull_request", load("pull_request.closed.not_merged"))  # the same #2
    merged[1]["pull_request"].update(
        merged=True,
        merged_at="2019-05-22T10:00:00Z",
        closed_at="2019-05-22T10:00:00Z",
        updated_at="2019-05-22T10:00:00Z",
        milestone=copy.deepcopy(milestoned["milestone"]),
    )
    alone = outcome_of(merged)
    both = outcome_of(merged, ("issues", milestoned))
    assert alone.promised_at == datetime(2019, 5, 22, 10, tzinfo=UTC)
    assert both.promised_at == datetime(2019, 5, 15, 15, 20, 35, tzinfo=UTC)
    assert alone.outcome is both.outcome is Outcome.EARLY
    assert both.promise_history == outcome_of(("issues", milestoned), merged).promise_history


def test_any_action_reads_size_and_state():
    payload = load("pull_request.closed.not_merged")
    payload["action"] = "synchronize"  # was ignored: it still carries the whole pull request
    payload["pull_request"]["labels"] = [{"name": "size:XS"}]
    events = normalize("pull_request", payload)
    state = fold(events, UTC_TZ)
    assert (state.size, state.status, state.opened_at) == (
        "XS",
        "dropped",
        datetime(2019, 5, 15, 15, 20, 33, tzinfo=UTC),
    )


def test_the_same_fact_from_two_payloads_is_one_event():
    first = closed_issue_1("2019-05-25T10:00:00Z")
    labeled = copy.deepcopy(first)
    labeled["action"] = "labeled"
    labeled["issue"]["updated_at"] = "2019-05-26T10:00:00Z"
    events = normalize("issues", first) + normalize("issues", labeled)
    opened = {e.event_id for e in events if e.kind is EventKind.OPENED}
    assert len(opened) == 1
    # The close of `labeled` is the one `closed` reported; the two fold to one close.
    assert fold(events, UTC_TZ).closed_at == datetime(2019, 5, 25, 10, tzinfo=UTC)


# Shapes, canonical keys and links limited to the client (issue 8, items 4 to 6).


def test_a_field_of_the_wrong_shape_is_an_invalid_payload_naming_it():
    for junk in (None, [1], {"n": 1}, "1", 0, -3, True, 1.5):
        payload = load("issues.opened")
        payload["issue"]["number"] = junk
        with pytest.raises(InvalidPayload, match=r"^issue\.number: "):
            normalize("issues", payload)
    payload = load("issues.opened")
    payload["issue"]["created_at"] = "last tuesday"
    with pytest.raises(InvalidPayload, match=r"issue\.created_at: .*ISO 8601"):
        normalize("issues", payload)
    payload = load("issues.opened")
    payload["issue"]["milestone"]["due_on"] = "2019-05-23T07:00:00"  # no offset
    with pytest.raises(InvalidPayload, match=r"issue\.milestone\.due_on"):
        normalize("issues", payload)
    payload = load("pull_request.closed.merged")
    del payload["repository"]
    with pytest.raises(InvalidPayload, match=r"^repository: "):
        normalize("pull_request", payload)
    payload = load("issues.opened")
    payload["issue"]["labels"] = "size:S"
    with pytest.raises(InvalidPayload, match=r"issue\.labels"):
        normalize("issues", payload)


def test_fields_the_handlers_do_not_read_may_hold_anything():
    payload = load("issues.opened")
    payload["issue"]["reactions"] = [None, {"x": [1]}]
    payload["issue"]["assignee"] = "not an object"
    payload["repository"]["owner"] = 5
    assert normalize("issues", payload) == normalize("issues", load("issues.opened"))


def test_the_repository_is_spelled_as_the_configuration_spells_it():
    cfg = GithubConfig(repositories=frozenset({"Codertocat/Hello-World"}))
    lower = load("issues.opened")
    lower["repository"]["full_name"] = "codertocat/HELLO-world"
    for payload in (load("issues.opened"), lower):
        opened, promised = normalize("issues", payload, cfg)
        assert opened.item_key == "github:Codertocat/Hello-World#1"
        assert promised.scope == "github:Codertocat/Hello-World/milestone/1"
    # A repository the configuration does not list: lower case.
    other = load("issues.opened")
    other["repository"]["full_name"] = "Someone/Else"
    assert normalize("issues", other, cfg)[0].item_key == "github:someone/else#1"


def test_a_pull_request_links_only_its_own_client_s_repositories_and_projects():
    payload = load("pull_request.closed.merged")
    payload["pull_request"]["body"] = (
        "Fixes #111, fixes ROBVANDERLEEK/Other#2 and fixes beta-org/app#50; "
        "closes robvanderleek/create-issue-branch#3"
    )
    payload["pull_request"]["title"] = "PLAT-7 and BETA-7 together"
    cfg = GithubConfig(
        repositories=frozenset(
            {"robvanderleek/create-issue-branch", "robvanderleek/other", "beta-org/app"}
        ),
        link_repositories=frozenset({"robvanderleek/create-issue-branch", "robvanderleek/other"}),
        jira_projects=frozenset({"PLAT"}),
    )
    [event] = acted(normalize("pull_request", payload, cfg))
    assert event.links == (
        "github:robvanderleek/create-issue-branch#111",
        "github:robvanderleek/create-issue-branch#3",
        "github:robvanderleek/other#2",
        "jira:PLAT-7",
    )
    assert all("beta" not in e.item_key for e in linked_deliveries(event))


def test_ignored_links_are_logged_once():
    payload = load("pull_request.closed.merged")
    payload["pull_request"]["body"] = "Fixes beta-org/app#50"
    cfg = GithubConfig(link_repositories=frozenset(), jira_projects=frozenset())
    with capture_logs() as logs:
        events = normalize("pull_request", payload, cfg)
    assert all(e.links == () for e in events)
    [line] = [entry for entry in logs if entry["event"] == "github.link_ignored"]
    assert line["ignored"] == ["github:beta-org/app#50"]
