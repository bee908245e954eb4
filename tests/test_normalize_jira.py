"""Jira payloads → domain events → settlement, from the real fixtures in tests/fixtures/jira.

No real capture has a due date (SOURCES.md, "Gaps"): tests copy a fixture and set
`issue.fields.duedate` to a "YYYY-MM-DD" string, as Jira sends it.
"""

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from connectors.jira.normalize import ROUTING, JiraConfig, normalize, parse_time
from connectors.routing import Decision
from connectors.shapes import InvalidPayload
from ledger.events import EventKind
from ledger.rules import Judge, Outcome, fold, settle
from tests.helpers import jira_headers
from trackrecord.db import session_factory
from trackrecord.models import Delivery

FIXTURES = Path(__file__).parent / "fixtures" / "jira"
UTC_TZ = ZoneInfo("UTC")
# The sites of the captures (their `self` links); version and sprint scopes are keyed by site.
SITE = "some-instance-test.atlassian.net"
MM_SITE = "mmtest.atlassian.net"
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


def acted(events: list) -> list:
    """The delivery's own events, without the evidence read from the issue's current state."""
    return [e for e in events if e.snapshot]


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
    assert (promised.promised_date, promised.scope) == (
        date(2019, 6, 6),
        f"jira:{MM_SITE}/sprint/1",
    )


def test_earliest_fix_version_release_date_beats_the_sprint_and_duedate_beats_both():
    payload = load("jira.issue_created.many_fields")
    versions = payload["issue"]["fields"]["fixVersions"]
    versions[0]["releaseDate"], versions[1]["releaseDate"] = "2019-06-10", "2019-06-01"
    _, promised = normalize(payload)
    assert (promised.promised_date, promised.scope) == (
        date(2019, 6, 1),
        f"jira:{MM_SITE}/version/10001",
    )
    payload["issue"]["fields"]["duedate"] = "2019-05-31"
    _, promised = normalize(payload)
    assert (promised.promised_date, promised.scope) == (date(2019, 5, 31), None)


def test_sprint_change_with_cloud_sprint_objects_re_promises_to_the_active_sprint_end():
    payload = load("jira.issue_updated.sprint")
    payload["issue"]["fields"]["customfield_10020"] = [
        {"id": 1, "state": "closed", "name": "Sprint 1", "endDate": "2019-02-15T10:00:00.000Z"},
        {"id": 2, "state": "active", "name": "Sprint 2", "endDate": "2019-03-01T10:00:00.000Z"},
    ]
    [event] = acted(normalize(payload, JiraConfig(sprint_field="customfield_10020")))
    assert (event.kind, event.promised_date) == (EventKind.PROMISE_SET, date(2019, 3, 1))
    assert event.due_at == datetime(2019, 3, 1, 10, tzinfo=UTC)
    # Cloud's sprint objects have no self link: the issue's says the site.
    assert event.scope == f"jira:{SITE}/sprint/2"


def test_fix_version_change_leaving_no_date_is_a_descope():
    # The real payload's fixVersions is [] after the change (trimmed by its authors).
    [event] = acted(normalize(load("jira.issue_updated.fix_version")))
    assert event.kind is EventKind.DESCOPED


def test_resolved_to_done_is_delivered_at_resolutiondate():
    [event] = acted(normalize(resolved()))
    assert (event.kind, event.resolution) == (EventKind.DELIVERED, "Done")
    assert event.at == datetime(2019, 2, 16, 3, 15, 40, tzinfo=UTC)
    [server] = acted(normalize(load("jira.issue_updated.resolved.server")))
    assert server.kind is EventKind.DELIVERED  # status "Resolved", category done


def test_resolution_wont_do_is_dropped():
    [event] = acted(normalize(resolved(resolution="Won't Do")))
    assert event.kind is EventKind.DROPPED


def test_leaving_done_is_a_reopen_and_starting_work_is_not():
    [event] = acted(normalize(load("jira.issue_updated.reopened")))
    assert event.kind is EventKind.REOPENED
    [started] = acted(normalize(load("jira.issue_updated.status_in_progress")))
    assert started.kind is EventKind.UPDATED


def test_deleted_issue_is_a_delete_event_and_an_open_deleted_item_is_dropped():
    [event] = acted(normalize(load("jira.issue_deleted")))
    assert (event.kind, event.item_key) == (EventKind.DELETED, "jira:IDT-19")
    assert settle(fold([event], UTC_TZ), NOW, UTC_TZ).outcome is Outcome.DROPPED


def test_event_time_falls_back_to_fields_updated_without_timestamp():
    payload = load("jira.issue_updated.status_in_progress")
    del payload["timestamp"]
    [event] = acted(normalize(payload))
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
    [event] = acted(normalize(payload))
    assert (event.kind, event.actor) == (EventKind.COMMENTED, "abc")


def test_version_release_date_change_is_keyed_by_the_version():
    # Shape from https://developer.atlassian.com/server/jira/platform/webhooks/ (no real capture).
    payload = {
        "timestamp": 1551000000000,
        "webhookEvent": "jira:version_updated",
        "version": {
            "self": f"https://{SITE}/rest/api/2/version/10001",
            "id": "10001",
            "name": "v2",
            "releaseDate": "2019-03-15",
            "released": False,
        },
    }
    [event] = normalize(payload)
    assert (event.kind, event.item_key) == (
        EventKind.MILESTONE_DUE_CHANGED,
        f"jira:{SITE}/version/10001",
    )
    assert event.promised_date == date(2019, 3, 15)


def test_ignored_and_unknown_webhooks_emit_nothing():
    # A sprint that has not started (or has no end date) promises nothing yet.
    unstarted = {"id": 1, "self": f"https://{SITE}/rest/agile/1.0/sprint/1", "state": "future"}
    assert normalize({"webhookEvent": "sprint_started", "sprint": unstarted}) == []
    assert ROUTING.decide("sprint_created", None) is Decision.IGNORE
    assert ROUTING.decide("comment_updated", None) is Decision.IGNORE
    # Unreleasing keeps the version's release date: nothing a promise rests on changes.
    assert ROUTING.decide("jira:version_unreleased", None) is Decision.IGNORE
    assert ROUTING.decide("jira:issue_updated", "issue_generic") is Decision.HANDLE
    assert ROUTING.decide("board_created", None) is Decision.UNSUPPORTED
    assert normalize({"webhookEvent": "jira:version_unreleased", "version": {"id": "1"}}) == []


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


# The current state in every issue payload is evidence (docs/ledger.md, "Evidence from the
# current state"): an issue whose only delivery is its resolution still shows its due date.


def test_a_resolution_is_the_only_delivery_and_its_due_date_is_the_promise():
    for due, expected, slip in [
        ("2019-02-20", Outcome.EARLY, -4),
        ("2019-02-16", Outcome.ON_TIME, 0),
        ("2019-02-14", Outcome.LATE, 2),
    ]:
        payload = resolved()
        payload["issue"]["fields"]["duedate"] = due
        result = settle_all(payload)
        assert (result.outcome, result.slip_days) == (expected, slip), due
        # Jira fires a moment after the resolution (here 37 ms; often seconds): the promise is
        # dated no later than resolutiondate, so it stood when the issue was resolved.
        assert result.promised_at == datetime(2019, 2, 16, 3, 15, 40, tzinfo=UTC)


def test_a_done_issue_s_later_payload_is_not_read_for_a_promise():
    # Due date set after the resolution (filing): the payload cannot prove it came before.
    later = due_changed(None, "2019-02-20", "2019-02-16T04:00:00+00:00")
    later["issue"]["fields"].update(resolved()["issue"]["fields"], duedate="2019-02-20")
    result = settle_all(later)
    assert (result.outcome, result.committed) == (Outcome.UNPROMISED, False)


def test_a_payload_without_due_date_withdraws_nothing():
    started = load("jira.issue_updated.status_in_progress")  # duedate null, no date change
    result = settle_all(created("2019-02-20"), started)
    assert (result.outcome, result.first_promised) == (Outcome.MISSED, date(2019, 2, 20))


def sprint(state: str, end: str | None, sid: int = 2) -> dict:
    return {"id": sid, "state": state, "name": f"Sprint {sid}", "boardId": 1, "endDate": end}


def commented_in(sprints: list[dict], at: str) -> dict:
    """An issue_commented update (no changelog): it shows the sprint field as it stands."""
    payload = load("jira.issue_updated.status_in_progress")
    payload.update(issue_event_type_name="issue_commented", changelog=None)
    payload["timestamp"] = int(datetime.fromisoformat(at).timestamp() * 1000)
    payload["issue"]["fields"]["customfield_10020"] = sprints
    return payload


def test_a_future_sprint_shown_withdraws_nothing():
    active = commented_in([sprint("active", "2019-03-01T10:00:00.000Z")], "2019-02-17T10:00:00")
    future = commented_in([sprint("future", None, sid=3)], "2019-02-18T10:00:00")
    state = fold([e for p in (active, future) for e in normalize(p)], UTC_TZ)
    assert (state.promise, state.scope) == (date(2019, 3, 1), f"jira:{SITE}/sprint/2")


def test_a_sprint_ends_on_the_team_s_day_for_issue_and_sprint_events_alike():
    # Sprint 2 ends at 23:30 UTC on 1 March: 2 March in Berlin. An issue resolved at 10:00 on
    # 2 March in Berlin is on time there, and a day late for a team in UTC.
    end = "2019-03-01T23:30:00.000Z"
    planned = commented_in([sprint("active", end)], "2019-02-17T10:00:00+00:00")
    done = resolved("2019-03-02T09:00:00.000+0000")
    berlin = ZoneInfo("Europe/Berlin")
    assert settle_all(planned, done, tz=berlin).outcome is Outcome.ON_TIME
    assert settle_all(planned, done).outcome is Outcome.LATE
    # The site-wide sprint_updated (no team) gives the same day: no phantom re-promise.
    [change] = normalize(
        {
            "timestamp": 1550570400000,  # 2019-02-19T10:00:00Z
            "webhookEvent": "sprint_updated",
            "sprint": {
                **sprint("active", end),
                "self": f"https://{SITE}/rest/agile/1.0/sprint/2",
                "startDate": "2019-02-15T09:00:00.000Z",
            },
        }
    )
    events = [*normalize(planned), change.retarget("jira:TES-41"), *normalize(done)]
    state = fold(events, berlin)
    assert (state.first_promised, state.latest_promised) == (date(2019, 3, 2), date(2019, 3, 2))
    assert len(state.promise_history) == 1


def test_the_webhook_view_answers_by_the_connector_s_routing_table(client, settings):
    def post(event: str):
        body = json.dumps({"webhookEvent": event, "timestamp": 1550286113023}).encode()
        return client.post("/webhooks/jira", data=body, headers=jira_headers(body))

    for event in ("jira:version_unreleased", "comment_updated", "sprint_created"):
        answer = post(event)
        assert (answer.status_code, answer.json["status"]) == (200, "ignored"), event
    refused = post("board_created")
    assert (refused.status_code, refused.json["error"]) == (400, "unsupported_event")
    assert "jira:version_unreleased" in refused.json["supported"]
    with session_factory(settings.database_url)() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert post("sprint_started").status_code == 202


# Shapes and site-scoped keys (issue 8, items 4 and 5).


def test_an_issue_key_that_is_no_key_is_an_invalid_payload():
    for junk in ("12345", "TES-0", "TES-", "-41", "T-41", None, 41, ["TES-41"]):
        payload = load("jira.issue_created")
        payload["issue"]["key"] = junk
        del payload["issue"]["fields"]["project"]
        with pytest.raises(InvalidPayload, match=r"^issue\.key: "):
            normalize(payload)


def test_an_issue_key_outside_its_project_is_an_invalid_payload():
    payload = load("jira.issue_created")
    payload["issue"]["key"] = "KT-41"  # fields.project.key is TES, which the intake routed by
    with pytest.raises(InvalidPayload, match=r"fields\.project\.key"):
        normalize(payload)


def test_an_issue_key_is_upper_case():
    payload = load("jira.issue_created")
    payload["issue"]["key"] = "tes-41"
    assert normalize(payload)[0].item_key == "jira:TES-41"


def test_bad_dates_and_times_are_invalid_payloads():
    for field, junk in [
        ("duedate", "next week"),
        ("duedate", "2019-02-30"),
        ("duedate", 20190220),
        ("created", "2019-02-15T19:01:52.971"),  # no offset
        ("resolutiondate", "0001-01-01T00:00:00.000+0100"),
    ]:
        payload = load("jira.issue_created")
        payload["issue"]["fields"][field] = junk
        with pytest.raises(InvalidPayload, match=rf"issue\.fields\.{field}: "):
            normalize(payload)
    payload = load("jira.issue_created")
    payload["timestamp"] = "yesterday"
    with pytest.raises(InvalidPayload, match=r"^timestamp: "):
        normalize(payload)


def test_custom_fields_of_any_shape_are_ignored():
    # The sprint field is a list of objects on Cloud and of strings on Server; story points are
    # a number or nothing. Anything else in a custom field says nothing, and fails nothing.
    plain = normalize(created("2019-02-20"))
    for junk in ("Sprint 1", 7, {"id": 3}, [None, 3, "x", {"state": "active", "id": "abc"}],
                 ["com.atlassian.greenhopper.service.sprint.Sprint@1[id=,state=ACTIVE]"],
                 [{"id": 4, "state": "active", "boardId": 1, "endDate": "soon"}]):  # fmt: skip
        payload = created("2019-02-20")
        payload["issue"]["fields"]["customfield_10020"] = junk
        assert normalize(payload) == plain, junk
    for junk in ("3", True, [3], {"value": 3}, 10**400):
        payload = created("2019-02-20")
        payload["issue"]["fields"]["customfield_10016"] = junk
        assert normalize(payload) == plain, junk


def test_version_and_sprint_events_need_their_self_link():
    version = {"webhookEvent": "jira:version_updated", "timestamp": 1551000000000,
               "version": {"id": "10001", "releaseDate": "2019-03-15"}}  # fmt: skip
    with pytest.raises(InvalidPayload, match=r"^version\.self: "):
        normalize(version)
    version["version"]["self"] = "not a url"
    with pytest.raises(InvalidPayload, match=r"^version\.self: "):
        normalize(version)
    started = {"webhookEvent": "sprint_started", "timestamp": 1551000000000,
               "sprint": sprint("active", "2019-03-01T10:00:00.000Z")}  # fmt: skip
    with pytest.raises(InvalidPayload, match=r"^sprint\.self: "):
        normalize(started)


def test_the_same_version_id_on_two_sites_is_two_scopes():
    def version_of(site: str) -> dict:
        return {"webhookEvent": "jira:version_updated", "timestamp": 1551000000000,
                "version": {"id": "10001", "releaseDate": "2019-03-15",
                            "self": f"https://{site}/rest/api/2/version/10001"}}  # fmt: skip

    [a] = normalize(version_of("acme.atlassian.net"))
    [b] = normalize(version_of("Beta.Atlassian.net:443"))
    assert (a.scope, b.scope) == (
        "jira:acme.atlassian.net/version/10001",
        "jira:beta.atlassian.net/version/10001",
    )


def test_a_fix_version_without_self_is_on_the_issue_s_site():
    payload = load("jira.issue_created.many_fields")
    for version in payload["issue"]["fields"]["fixVersions"]:
        version["releaseDate"] = "2019-06-10"
        del version["self"]
    _, promised = normalize(payload)
    assert promised.scope == f"jira:{MM_SITE}/version/10000"
    del payload["issue"]["self"]
    with pytest.raises(InvalidPayload, match=r"^issue\.self: "):
        normalize(payload)
