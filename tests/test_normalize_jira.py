"""Jira payloads → domain events → settlement, from the real fixtures in tests/fixtures/jira.

No real capture has a due date (SOURCES.md, "Gaps"): tests copy a fixture and set
`issue.fields.duedate` to a "YYYY-MM-DD" string, as Jira sends it.
"""

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.jira.normalize import JiraConfig, classify, normalize, parse_time
from ledger.events import EventKind
from ledger.rules import Judge, Outcome, fold, settle

FIXTURES = Path(__file__).parent / "fixtures" / "jira"
UTC_TZ = ZoneInfo("UTC")
NOW = datetime(2019, 3, 31, tzinfo=UTC)


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def created(duedate: str | None = "2019-02-20") -> dict:
    payload = load("jira.issue_created")
    payload["issue"]["fields"]["duedate"] = duedate
    return payload


def resolved(at: str | None = None, resolution: str = "Done") -> dict:
    """The real resolve of TES-41 (2019-02-16T03:15:40Z), optionally moved to `at`."""
    payload = load("jira.issue_updated.resolved")
    payload["issue"]["fields"]["resolution"]["name"] = resolution
    if at:
        payload["issue"]["fields"]["resolutiondate"] = at
        payload["timestamp"] = int(datetime.fromisoformat(at).timestamp() * 1000)
    return payload


def due_changed(old: str | None, new: str | None, at: str) -> dict:
    """The real Fix Version update of TES-41, turned into a due date change."""
    payload = load("jira.issue_updated.fix_version")
    payload["changelog"]["items"] = [
        {"field": "duedate", "fieldtype": "jira", "fieldId": "duedate", "from": old, "to": new}
    ]
    payload["issue"]["fields"]["duedate"] = new
    payload["timestamp"] = int(datetime.fromisoformat(at).timestamp() * 1000)
    return payload


def settle_all(*payloads: dict, tz=UTC_TZ, judge=Judge.FIRST):
    state = fold([e for p in payloads for e in normalize(p)], tz)
    return settle(state, NOW, tz, judge=judge)


def test_jira_timestamps_with_colonless_offsets_parse_to_utc_seconds():
    assert parse_time("2019-05-07T10:11:12.345+0000") == datetime(
        2019, 5, 7, 10, 11, 12, tzinfo=UTC
    )
    assert parse_time("2019-02-15T19:15:40.470-0800") == datetime(
        2019, 2, 16, 3, 15, 40, tzinfo=UTC
    )


def test_created_without_date_is_opened_by_its_reporter_and_not_promised():
    [event] = normalize(load("jira.issue_created"))
    assert (event.kind, event.item_key, event.item_type) == (
        EventKind.OPENED,
        "jira:TES-41",
        "jira",
    )
    assert event.at == datetime(2019, 2, 16, 3, 1, 52, tzinfo=UTC)


def test_created_with_duedate_is_promised_at_creation():
    opened, promised = normalize(created("2019-02-20"))
    assert promised.kind is EventKind.PROMISE_SET
    assert (promised.promised_date, promised.at) == (date(2019, 2, 20), opened.at)


def test_active_sprint_in_server_string_format_gives_its_end_date():
    # Real 2019 Cloud payload: customfield_10021 holds "...Sprint@38c6bd04[...,state=ACTIVE,...]".
    _, promised = normalize(load("jira.issue_created.many_fields"))
    assert (promised.promised_date, promised.scope) == (date(2019, 6, 6), "jira:sprint/1")


def test_earliest_fix_version_release_date_beats_the_sprint_and_duedate_beats_both():
    payload = load("jira.issue_created.many_fields")
    versions = payload["issue"]["fields"]["fixVersions"]
    versions[0]["releaseDate"], versions[1]["releaseDate"] = "2019-06-10", "2019-06-01"
    _, promised = normalize(payload)
    assert (promised.promised_date, promised.scope) == (date(2019, 6, 1), "jira:version/10001")
    payload["issue"]["fields"]["duedate"] = "2019-05-31"
    _, promised = normalize(payload)
    assert (promised.promised_date, promised.scope) == (date(2019, 5, 31), None)


def test_sprint_change_with_cloud_sprint_objects_re_promises_to_the_active_sprint_end():
    payload = load("jira.issue_updated.sprint")
    payload["issue"]["fields"]["customfield_10020"] = [
        {"id": 1, "state": "closed", "name": "Sprint 1", "endDate": "2019-02-15T10:00:00.000Z"},
        {"id": 2, "state": "active", "name": "Sprint 2", "endDate": "2019-03-01T10:00:00.000Z"},
    ]
    [event] = normalize(payload, JiraConfig(sprint_field="customfield_10020"))
    assert (event.kind, event.promised_date) == (EventKind.PROMISE_SET, date(2019, 3, 1))
    assert event.scope == "jira:sprint/2"


def test_fix_version_change_leaving_no_date_is_a_descope():
    # The real payload's fixVersions is [] after the change (trimmed by its authors).
    [event] = normalize(load("jira.issue_updated.fix_version"))
    assert event.kind is EventKind.DESCOPED


def test_resolved_to_done_is_delivered_at_resolutiondate():
    [event] = normalize(resolved())
    assert (event.kind, event.resolution) == (EventKind.DELIVERED, "Done")
    assert event.at == datetime(2019, 2, 16, 3, 15, 40, tzinfo=UTC)
    [server] = normalize(load("jira.issue_updated.resolved.server"))
    assert server.kind is EventKind.DELIVERED  # status "Resolved", category done


def test_resolution_wont_do_is_dropped():
    [event] = normalize(resolved(resolution="Won't Do"))
    assert event.kind is EventKind.DROPPED


def test_leaving_done_is_a_reopen_and_starting_work_is_not():
    [event] = normalize(load("jira.issue_updated.reopened"))
    assert event.kind is EventKind.REOPENED
    [started] = normalize(load("jira.issue_updated.status_in_progress"))
    assert started.kind is EventKind.UPDATED


def test_deleted_issue_is_a_delete_event_and_an_open_deleted_item_is_dropped():
    [event] = normalize(load("jira.issue_deleted"))
    assert (event.kind, event.item_key) == (EventKind.DELETED, "jira:IDT-19")
    assert settle(fold([event], UTC_TZ), NOW, UTC_TZ).outcome is Outcome.DROPPED


def test_event_time_falls_back_to_fields_updated_without_timestamp():
    payload = load("jira.issue_updated.status_in_progress")
    del payload["timestamp"]
    [event] = normalize(payload)
    assert event.at == datetime(2019, 2, 16, 3, 14, 22, tzinfo=UTC)


def test_story_points_come_from_the_configured_field():
    payload = load("jira.issue_created")
    payload["issue"]["fields"]["customfield_10016"] = 3
    payload["issue"]["fields"]["customfield_10026"] = 5
    assert normalize(payload)[0].story_points == 3.0
    assert (
        normalize(payload, JiraConfig(story_points_field="customfield_10026"))[0].story_points
        == 5.0
    )


def test_issue_commented_records_the_comment_author():
    payload = load("jira.issue_updated.status_in_progress")
    payload["issue_event_type_name"] = "issue_commented"
    payload["changelog"] = None
    payload["comment"] = {"author": {"accountId": "abc"}, "created": "2019-02-15T19:20:00.000-0800"}
    [event] = normalize(payload)
    assert (event.kind, event.actor) == (EventKind.COMMENTED, "abc")


def test_version_release_date_change_is_keyed_by_the_version():
    # Shape from https://developer.atlassian.com/server/jira/platform/webhooks/ (no real capture).
    payload = {
        "timestamp": 1551000000000,
        "webhookEvent": "jira:version_updated",
        "version": {"id": "10001", "name": "v2", "releaseDate": "2019-03-15", "released": False},
    }
    [event] = normalize(payload)
    assert (event.kind, event.item_key) == (EventKind.MILESTONE_DUE_CHANGED, "jira:version/10001")
    assert event.promised_date == date(2019, 3, 15)


def test_ignored_and_unknown_webhooks_emit_nothing():
    # A sprint that has not started (or has no end date) promises nothing yet.
    assert normalize({"webhookEvent": "sprint_started", "sprint": {"id": 1}}) == []
    assert classify({"webhookEvent": "sprint_created"}) == "ignored"
    assert classify({"webhookEvent": "board_created"}) == "unknown"


# Outcomes, one each. TES-41 resolves on 2019-02-16T03:15:40Z = 2019-02-15 19:15 in Los Angeles.


def test_jira_delivered_on_its_due_day_in_the_team_timezone_is_on_time():
    result = settle_all(created("2019-02-15"), resolved(), tz=ZoneInfo("America/Los_Angeles"))
    assert (result.outcome, result.slip_days) == (Outcome.ON_TIME, 0)


def test_jira_same_delivery_in_utc_is_a_day_late():
    result = settle_all(created("2019-02-15"), resolved())
    assert (result.outcome, result.slip_days) == (Outcome.LATE, 1)


def test_jira_delivered_before_due_is_early():
    assert settle_all(created("2019-02-20"), resolved()).outcome is Outcome.EARLY


def test_jira_open_past_due_is_missed():
    result = settle_all(created("2019-02-20"))
    assert (result.outcome, result.slip_days) == (Outcome.MISSED, 39)


def test_jira_wont_do_is_dropped():
    assert settle_all(created(), resolved(resolution="Won't Do")).outcome is Outcome.DROPPED


def test_jira_due_date_cleared_before_deadline_is_descoped_even_if_done_later():
    cleared = due_changed("2019-02-20", None, "2019-02-18T12:00:00+00:00")
    later = resolved("2019-02-25T12:00:00.000+0000")
    assert settle_all(created(), cleared, later).outcome is Outcome.DESCOPED


def test_jira_resolved_without_any_date_is_an_unpromised_win():
    assert settle_all(created(None), resolved()).outcome is Outcome.UNPROMISED


def test_jira_reopen_revokes_the_delivery_and_the_next_resolve_counts():
    again = resolved("2019-02-25T12:00:00.000+0000")
    result = settle_all(created(), resolved(), load("jira.issue_updated.reopened"), again)
    assert (result.outcome, result.slip_days) == (Outcome.LATE, 5)


def test_jira_re_promise_is_history_and_judged_against_the_first_by_default():
    moved = due_changed("2019-02-20", "2019-02-28", "2019-02-18T12:00:00+00:00")
    done = resolved("2019-02-25T12:00:00.000+0000")
    first = settle_all(created(), moved, done)
    assert (first.outcome, first.slip_days, first.repromise_count) == (Outcome.LATE, 5, 1)
    assert [c.promised_date for c in first.promise_history] == [
        date(2019, 2, 20),
        date(2019, 2, 28),
    ]
    latest = settle_all(created(), moved, done, judge=Judge.LATEST)
    assert (latest.outcome, latest.slip_days) == (Outcome.EARLY, -3)
