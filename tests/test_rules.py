"""The fold converges whatever the order, and the settlement rules hold at their edges."""

import copy
import json
import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.github import normalize as github
from connectors.jira import normalize as jira
from ledger.events import DomainEvent, EventKind, linked_deliveries
from ledger.rules import ItemState, Outcome, first_response, fold, settle

FIXTURES = Path(__file__).parent / "fixtures"
UTC_TZ = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2019, 6, 30, tzinfo=UTC)
KEY = "github:o/r#1"


def load(path: str) -> dict:
    return json.loads((FIXTURES / f"{path}.json").read_text())


def ev(kind: EventKind, at: str, **fields) -> DomainEvent:
    fields.setdefault("item_key", KEY)
    return DomainEvent(source="github", kind=kind, at=datetime.fromisoformat(at), **fields)


def promise(at: str, day: str, scope: str = "m1") -> DomainEvent:
    return ev(EventKind.PROMISE_SET, at, promised_date=date.fromisoformat(day), scope=scope)


def outcome(*events: DomainEvent, tz: ZoneInfo = UTC_TZ) -> Outcome:
    return settle(fold(events, tz), NOW, tz).outcome


def apply(state: ItemState | None, event: DomainEvent, *, team_tz: ZoneInfo) -> ItemState:
    """One more event on a folded state: the fold of everything seen so far, re-sorted."""
    if state is None:
        return fold([event], team_tz)
    return fold([*state.events.values(), event], team_tz)


def github_stream() -> list[DomainEvent]:
    """Hello-World#1: opened in v1.0, goalposts moved, closed, reopened, closed again."""
    opened = load("github/issues.opened")
    moved = load("github/milestone.created")
    moved["action"], moved["changes"] = "edited", {"due_on": {"from": "2019-05-23T07:00:00Z"}}
    moved["milestone"].update(due_on="2019-05-30T07:00:00Z", updated_at="2019-05-20T09:00:00Z")
    closed = load("github/issues.closed")
    closed["repository"], closed["issue"]["number"] = opened["repository"], 1
    closed["issue"]["closed_at"] = "2019-05-22T10:00:00Z"
    reopened = load("github/issues.reopened")
    reopened["issue"]["updated_at"] = "2019-05-22T12:00:00Z"
    # The payload shows the milestone as it is then: moved to the 30th on the 20th.
    reopened["issue"]["milestone"]["due_on"] = "2019-05-30T07:00:00Z"
    closed_again = copy.deepcopy(closed)
    closed_again["issue"]["closed_at"] = "2019-05-26T10:00:00Z"
    comment = copy.deepcopy(opened)
    comment["action"] = "created"
    comment["comment"] = {"user": {"login": "octocat"}, "created_at": "2019-05-16T08:00:00Z"}
    [due_change] = github.normalize("milestone", moved)
    return [
        *github.normalize("issues", opened),
        due_change.retarget("github:Codertocat/Hello-World#1"),
        *github.normalize("issues", closed),
        *github.normalize("issues", reopened),
        *github.normalize("issues", closed_again),
        *github.normalize("issue_comment", comment),
    ]


def jira_stream() -> list[DomainEvent]:
    created = load("jira/jira.issue_created")
    created["issue"]["fields"]["duedate"] = "2019-02-20"
    names = ["resolved", "reopened", "status_in_progress", "fix_version", "sprint"]
    updates = [load(f"jira/jira.issue_updated.{n}") for n in names]
    return [e for p in [created, *updates] for e in jira.normalize(p)]


@pytest.mark.parametrize("stream", [github_stream, jira_stream])
def test_three_orders_with_duplicates_fold_to_the_same_state(stream):
    events = stream()
    shuffled = events[::-1] + events[:3]
    rng = random.Random(7)
    third = events + events
    rng.shuffle(third)
    states = [fold(order, BERLIN) for order in (events, shuffled, third)]
    assert states[0] == states[1] == states[2]


@pytest.mark.parametrize("stream", [github_stream, jira_stream])
def test_apply_one_at_a_time_in_any_order_matches_fold(stream):
    events = stream()
    state = None
    for event in reversed(events + events):
        state = apply(state, event, team_tz=BERLIN)
    assert state == fold(events, BERLIN)


def test_github_stream_settles_late_against_first_promise_after_reopen():
    result = settle(fold(github_stream(), UTC_TZ), NOW, UTC_TZ)
    # First promise 2019-05-23, re-promised 2019-05-30; the second close (26th) counts.
    assert (result.outcome, result.slip_days) == (Outcome.LATE, 3)
    assert (result.first_promised, result.latest_promised) == (date(2019, 5, 23), date(2019, 5, 30))


def test_close_that_arrives_before_the_milestoned_event_is_still_on_time():
    stream = [
        promise("2019-05-15T10:00:00Z", "2019-05-23"),
        ev(EventKind.DELIVERED, "2019-05-23T10:00:00Z"),
    ]
    assert outcome(*reversed(stream)) is Outcome.ON_TIME


def test_same_second_milestoned_then_demilestoned_is_descoped_in_either_arrival_order():
    pair = [
        promise("2019-05-15T10:00:00Z", "2019-05-23"),
        ev(EventKind.DESCOPED, "2019-05-15T10:00:00Z", scope="m1"),
    ]
    assert outcome(*pair) is outcome(*reversed(pair)) is Outcome.DESCOPED


def test_same_second_close_and_reopen_leaves_the_item_open():
    pair = [
        ev(EventKind.REOPENED, "2019-05-20T10:00:00Z"),
        ev(EventKind.DELIVERED, "2019-05-20T10:00:00Z"),
    ]
    assert fold(pair, UTC_TZ).status == "open"


def test_milestone_move_in_one_second_keeps_the_new_promise():
    # demilestoned(m1) ranks after milestoned(m2) but names m1, which the item already left.
    state = fold(
        [
            promise("2019-05-01T10:00:00Z", "2019-05-23", "m1"),
            promise("2019-05-10T10:00:00Z", "2019-05-30", "m2"),
            ev(EventKind.DESCOPED, "2019-05-10T10:00:00Z", scope="m1"),
        ],
        UTC_TZ,
    )
    assert (state.promise, state.scope, state.first_promised) == (
        date(2019, 5, 30),
        "m2",
        date(2019, 5, 23),
    )


def test_reopen_revokes_delivery_and_the_next_close_counts():
    stream = [
        promise("2019-05-15T10:00:00Z", "2019-05-23"),
        ev(EventKind.DELIVERED, "2019-05-20T10:00:00Z"),
        ev(EventKind.REOPENED, "2019-05-21T10:00:00Z"),
    ]
    assert outcome(*stream) is Outcome.MISSED
    assert outcome(*stream, ev(EventKind.DELIVERED, "2019-05-27T10:00:00Z")) is Outcome.LATE


def test_descoped_before_deadline_then_completed_stays_descoped():
    stream = [
        promise("2019-05-15T10:00:00Z", "2019-05-23"),
        ev(EventKind.DESCOPED, "2019-05-22T10:00:00Z", scope="m1"),
        ev(EventKind.DELIVERED, "2019-05-24T10:00:00Z"),
    ]
    assert outcome(*stream) is Outcome.DESCOPED


def test_descoped_after_deadline_is_still_missed():
    stream = [
        promise("2019-05-15T10:00:00Z", "2019-05-23"),
        ev(EventKind.DESCOPED, "2019-05-24T00:00:00Z"),
    ]
    assert outcome(*stream) is Outcome.MISSED


def test_milestone_added_after_close_is_not_a_commitment():
    stream = [
        ev(EventKind.DELIVERED, "2019-05-20T10:00:00Z"),
        promise("2019-05-21T10:00:00Z", "2019-05-23"),
    ]
    result = settle(fold(stream, UTC_TZ), NOW, UTC_TZ)
    assert (result.outcome, result.committed) == (Outcome.UNPROMISED, False)


def test_deadline_is_the_end_of_the_promised_day_in_team_timezone():
    due = promise("2019-05-15T10:00:00Z", "2019-05-23")
    # 23:59:59 and 00:00:00 in Berlin (UTC+2 in May).
    assert (
        outcome(due, ev(EventKind.DELIVERED, "2019-05-23T21:59:59Z"), tz=BERLIN) is Outcome.ON_TIME
    )
    assert outcome(due, ev(EventKind.DELIVERED, "2019-05-23T22:00:00Z"), tz=BERLIN) is Outcome.LATE


def test_merged_pr_delivers_its_linked_issue_once_even_with_the_issue_own_close():
    merged = ev(EventKind.DELIVERED, "2019-05-22T10:00:00Z", item_key="github:o/r#9", links=(KEY,))
    [linked] = linked_deliveries(merged)
    own_close = ev(EventKind.DELIVERED, "2019-05-22T10:00:00Z", resolution="completed")
    state = fold([promise("2019-05-15T10:00:00Z", "2019-05-23"), linked, own_close], UTC_TZ)
    assert state.status == "delivered" and state.links == ("github:o/r#9",)
    assert settle(state, NOW, UTC_TZ).outcome is Outcome.EARLY


def test_first_response_counts_only_team_comments_on_outside_issues():
    opened = ev(EventKind.OPENED, "2019-05-15T10:00:00Z", actor="visitor")
    comments = [
        ev(EventKind.COMMENTED, "2019-05-15T11:00:00Z", actor="visitor"),
        ev(EventKind.COMMENTED, "2019-05-15T13:00:00Z", actor="alice"),
    ]
    state = fold([opened, *comments], UTC_TZ)
    assert first_response(state, {"alice"}) == timedelta(hours=3)
    assert first_response(state, {"visitor"}) is None  # opened by the team: not counted


def test_fold_refuses_events_of_two_items():
    with pytest.raises(ValueError):
        fold(
            [
                ev(EventKind.OPENED, "2019-05-15T10:00:00Z"),
                ev(EventKind.OPENED, "2019-05-15T10:00:00Z", item_key="x"),
            ],
            UTC_TZ,
        )


def test_an_undated_sighting_records_the_scope_and_withdraws_nothing():
    planned = ev(EventKind.PLANNED, "2019-05-16T10:00:00Z", scope="m2")
    kept = fold([promise("2019-05-15T10:00:00Z", "2019-05-23"), planned], UTC_TZ)
    assert (kept.promise, kept.scope, kept.descoped_at) == (date(2019, 5, 23), "m1", None)
    dated = ev(
        EventKind.MILESTONE_DUE_CHANGED,
        "2019-05-17T10:00:00Z",
        promised_date=date(2019, 5, 30),
        scope="m2",
    )
    later = fold([planned, dated], UTC_TZ)
    assert (later.promise, later.promised_at) == (date(2019, 5, 30), dated.at)
    closed = fold([ev(EventKind.DELIVERED, "2019-05-15T10:00:00Z"), planned, dated], UTC_TZ)
    assert (closed.scope, closed.first_promised) == (None, None)


def test_a_due_instant_is_judged_on_the_team_s_calendar_day():
    end = datetime(2019, 5, 23, 23, 30, tzinfo=UTC)  # 24 May in Berlin
    sprint = ev(
        EventKind.PROMISE_SET,
        "2019-05-15T10:00:00Z",
        promised_date=end.date(),
        due_at=end,
        scope="jira:sprint/1",
    )
    done = ev(EventKind.DELIVERED, "2019-05-24T10:00:00Z")
    assert fold([sprint], BERLIN).promise == date(2019, 5, 24)
    assert outcome(sprint, done, tz=BERLIN) is Outcome.ON_TIME
    assert outcome(sprint, done) is Outcome.LATE


def test_events_survive_the_codec_with_their_ids():
    from ledger.codec import decode, encode

    end = datetime(2019, 5, 23, 23, 30, tzinfo=UTC)
    for event in [
        *github_stream(),
        *jira_stream(),
        ev(EventKind.PLANNED, "2019-05-16T10:00:00Z", scope="m2"),
        ev(EventKind.PROMISE_SET, "2019-05-15T10:00:00Z", promised_date=end.date(), due_at=end),
    ]:
        assert decode(encode(event)) == event
        assert decode(encode(event)).event_id == event.event_id


def test_the_promise_a_close_shows_counts_for_a_linked_merge_a_moment_before():
    # PR #9 merges at 10:00:00 and delivers #1 ("Fixes #1"); GitHub closes #1 two seconds
    # later, and that closing payload is the first to show #1's milestone.
    merged = ev(EventKind.DELIVERED, "2019-05-22T10:00:00Z", item_key="github:o/r#9", links=(KEY,))
    [linked] = linked_deliveries(merged)
    shown = ev(
        EventKind.PROMISE_SET,
        "2019-05-22T10:00:02Z",
        promised_date=date(2019, 5, 23),
        scope="m1",
        at_close=True,
    )
    own_close = ev(EventKind.DELIVERED, "2019-05-22T10:00:02Z", resolution="completed")
    result = settle(fold([linked, shown, own_close], UTC_TZ), NOW, UTC_TZ)
    assert (result.outcome, result.promised_at) == (Outcome.EARLY, merged.at)
    # Not from a closing payload (filed after the close): still no commitment.
    filed = replace(shown, at_close=False)
    assert outcome(linked, filed, own_close) is Outcome.UNPROMISED
