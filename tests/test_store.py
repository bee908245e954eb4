"""ledger.store on its own: hand-made domain events into a real database (SQLite and
PostgreSQL), asserting on the rows."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from connectors.directory import build_directory
from connectors.github import normalize as github
from connectors.jira import normalize as jira
from ledger import codec, store
from ledger.events import DomainEvent, EventKind
from ledger.tables import Commitment, Item, ItemEvent, settle_instant
from ledger.teams import Owner, TeamRules
from tests.helpers import FIXTURES
from tests.ledger_helpers import commitments, promise_changes
from trackrecord.config import load_config
from trackrecord.db import session_factory

KEY = "github:Codertocat/Hello-World#1"
M1 = "github:Codertocat/Hello-World/milestone/1"
M2 = "github:Codertocat/Hello-World/milestone/2"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def ev(kind: EventKind, at: str, key: str = KEY, **fields) -> DomainEvent:
    when = datetime.fromisoformat(at).replace(tzinfo=UTC)
    return DomainEvent(source=key.split(":")[0], item_key=key, kind=kind, at=when, **fields)


def promise(at: str, day: str, scope: str = M1, key: str = KEY) -> DomainEvent:
    return ev(EventKind.PROMISE_SET, at, key, promised_date=date.fromisoformat(day), scope=scope)


def due_change(at: str, day: str | None, scope: str = M1) -> DomainEvent:
    return ev(
        EventKind.MILESTONE_DUE_CHANGED,
        at,
        scope,
        promised_date=date.fromisoformat(day) if day else None,
        scope=scope,
        snapshot=False,
    )


@pytest.fixture
def session(settings):
    with session_factory(settings.database_url)() as s:
        yield s


# The owner of the repository the hand-made events come from (conftest's CONFIG_TOML).
PLATFORM = Owner("platform", "acme")


def apply(session, settings, *events, commit=True, now=NOW):
    keys = store.apply_events(session, build_directory(settings.config), PLATFORM, events, now=now)
    if commit:
        session.commit()
    return keys


def all_fixture_events():
    for path in sorted((FIXTURES / "github").glob("*.json")):
        yield from github.normalize(path.name.split(".")[0], json.loads(path.read_text()))
    for path in sorted((FIXTURES / "jira").glob("*.json")):
        yield from jira.normalize(json.loads(path.read_text()))


def test_codec_round_trip_keeps_the_event_id():
    events = list(all_fixture_events())
    assert len(events) > 10
    for event in events:
        back = codec.decode(json.loads(json.dumps(codec.encode(event))))
        assert back == event and back.event_id == event.event_id


def test_apply_does_not_commit(session, settings):
    assert apply(session, settings, promise("2019-05-15T10:00:00", "2019-05-23"), commit=False) == {
        KEY
    }
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Item)) == 0


def test_a_stored_event_is_skipped(session, settings):
    events = [
        ev(EventKind.OPENED, "2019-05-15T10:00:00"),
        promise("2019-05-15T10:00:00", "2019-05-23"),
    ]
    apply(session, settings, *events)
    apply(session, settings, *events, events[1])
    assert session.scalar(select(func.count()).select_from(ItemEvent)) == 2
    assert commitments(settings)[KEY]["outcome"] == "missed"


def test_due_change_reaches_items_that_moved_on_whatever_the_order(settings):
    """Promised in M1, M1 moved, then the item moved to M2: the move of M1 is history."""
    events = [
        promise("2019-05-15T10:00:00", "2019-05-23"),
        due_change("2019-05-16T10:00:00", "2019-05-30"),
        promise("2019-05-17T10:00:00", "2019-06-10", scope=M2),
    ]
    seen = set()
    for order in itertools.permutations(events):
        url = settings.database_url
        with session_factory(url)() as s:
            s.execute(Item.__table__.delete())
            for event in order:  # one delivery each, in this arrival order
                apply(s, settings, event)
        history = tuple(d for _, d, _ in promise_changes(settings, KEY))
        seen.add((history, commitments(settings)[KEY]["repromise_count"]))
    assert seen == {((date(2019, 5, 23), date(2019, 5, 30), date(2019, 6, 10)), 2)}


def test_due_change_before_the_item_joined_does_not_apply(session, settings):
    apply(session, settings, due_change("2019-05-14T10:00:00", "2019-05-30"))
    apply(session, settings, promise("2019-05-15T10:00:00", "2019-05-23"))
    row = commitments(settings)[KEY]
    assert (row["first_promised"], row["latest_promised"]) == (date(2019, 5, 23), date(2019, 5, 23))


def test_linked_delivery_creates_items_with_their_own_team(session, settings):
    pr = ev(
        EventKind.DELIVERED,
        "2019-05-20T10:00:00",
        links=("github:robvanderleek/create-issue-branch#5", "github:stranger/repo#9"),
        item_type="pull_request",
    )
    keys = apply(session, settings, pr)
    # A listed repository's item keeps its own team; an item no team lists has no client, so
    # no delivery may create it (docs/security.md, "Tenant isolation").
    assert keys == {KEY, "github:robvanderleek/create-issue-branch#5"}
    teams = dict(session.execute(select(Item.key, Item.team)).all())
    assert teams["github:robvanderleek/create-issue-branch#5"] == "web"
    assert "github:stranger/repo#9" not in teams
    # One win, counted once: on the issues the PR delivered, not on the PR.
    assert {k: r["outcome"] for k, r in commitments(settings).items()} == {
        KEY: "linked",
        "github:robvanderleek/create-issue-branch#5": "unpromised",
    }


def test_deadline_is_stored_in_utc_for_a_berlin_team(session, settings):
    key = "github:robvanderleek/create-issue-branch#1"
    apply(session, settings, promise("2020-03-20T10:00:00", "2020-03-25", key=key))
    deadline = commitments(settings)[key]["deadline"]
    # The end of March 25th in Berlin (CET, UTC+1), not 00:00Z and not Berlin wall time.
    assert deadline == datetime(2020, 3, 25, 23, 0, tzinfo=UTC)


def test_reopened_unpromised_win_loses_its_row(session, settings):
    closed = ev(EventKind.DELIVERED, "2019-05-20T10:00:00", resolution="completed")
    apply(session, settings, closed)
    assert commitments(settings)[KEY]["outcome"] == "unpromised"
    apply(session, settings, ev(EventKind.REOPENED, "2019-05-21T10:00:00"))
    assert commitments(settings) == {}


def test_settle_overdue_only_touches_pending_rows_past_their_deadline(session, settings):
    apply(session, settings, promise("2019-05-15T10:00:00", "2019-05-23"))
    session.execute(Commitment.__table__.update().values(outcome="pending", settled_at=None))
    session.commit()
    assert store.settle_overdue(session, datetime(2019, 5, 23, 23, 59, tzinfo=UTC)) == 0
    assert store.settle_overdue(session, datetime(2019, 5, 24, tzinfo=UTC)) == 1
    session.commit()
    row = commitments(settings)[KEY]
    assert (row["outcome"], row["settled_at"]) == ("missed", datetime(2019, 5, 24, tzinfo=UTC))
    assert store.settle_overdue(session, NOW) == 0


def _settle_at_is_derived(row: dict) -> None:
    assert row["settle_at"] == settle_instant(
        outcome=row["outcome"],
        promised_date=row["promised_date"],
        deadline=row["deadline"],
        settled_at=row["settled_at"],
        delivered_at=row["delivered_at"],
    )


def test_settle_at_follows_the_row_through_its_life(session, settings):
    """settle_at (0004) is the settlement the figures order by: the deadline while pending,
    unchanged when settle_overdue makes the row a miss, the delivery once delivered, and
    nothing for a row that is not a promise."""
    opened = datetime(2019, 5, 16, tzinfo=UTC)
    apply(session, settings, promise("2019-05-15T10:00:00", "2019-05-23"), now=opened)
    row = commitments(settings)[KEY]
    assert row["outcome"] == "pending"
    assert row["settle_at"] == row["deadline"] == datetime(2019, 5, 24, tzinfo=UTC)
    assert store.settle_overdue(session, datetime(2019, 5, 24, tzinfo=UTC)) == 1
    session.commit()
    row = commitments(settings)[KEY]
    assert (row["outcome"], row["settle_at"]) == ("missed", datetime(2019, 5, 24, tzinfo=UTC))
    _settle_at_is_derived(row)
    apply(session, settings, ev(EventKind.DELIVERED, "2019-05-22T10:00:00", resolution="done"))
    row = commitments(settings)[KEY]
    assert row["outcome"] in ("early", "on_time")
    assert row["settle_at"] == datetime(2019, 5, 22, 10, tzinfo=UTC)
    _settle_at_is_derived(row)
    other = "github:Codertocat/Hello-World#2"
    win = ev(EventKind.DELIVERED, "2019-05-20T10:00:00", key=other, resolution="completed")
    apply(session, settings, win)
    row = commitments(settings)[other]
    assert row["outcome"] == "unpromised" and row["settle_at"] is None


def test_a_late_delivery_keeps_settle_at_at_its_deadline(session, settings):
    """A promise still open at its deadline is broken there (a miss at 05-24 00:00); delivered
    late afterwards it stays broken at that deadline (0005), not at the delivery."""
    opened = datetime(2019, 5, 16, tzinfo=UTC)
    apply(session, settings, promise("2019-05-15T10:00:00", "2019-05-23"), now=opened)
    assert store.settle_overdue(session, datetime(2019, 5, 25, tzinfo=UTC)) == 1
    session.commit()
    deadline = datetime(2019, 5, 24, tzinfo=UTC)
    assert commitments(settings)[KEY]["settle_at"] == deadline
    apply(session, settings, ev(EventKind.DELIVERED, "2019-05-27T10:00:00", resolution="done"))
    row = commitments(settings)[KEY]
    assert (row["outcome"], row["slip_days"]) == ("late", 4)
    assert row["delivered_at"] == datetime(2019, 5, 27, 10, tzinfo=UTC)
    assert row["settle_at"] == row["deadline"] == deadline
    _settle_at_is_derived(row)


def test_writers_of_one_milestone_wait_for_each_other(settings):
    """Two workers at once: one stores a milestone's new due date, the other an item joining
    that milestone (with the old date). Whichever commits second must see the first's row."""
    import threading

    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers by itself")
    Session = session_factory(settings.database_url)
    # The item joins M1 (due 05-23); the milestone is moved to 05-30 a moment later.
    joining = promise("2019-05-15T16:00:00", "2019-05-23")
    with Session() as first:
        apply(first, settings, due_change("2019-05-20T12:00:00", "2019-05-30"), commit=False)
        done = threading.Event()

        def second_worker():
            with Session() as second:
                apply(second, settings, joining)
            done.set()

        worker = threading.Thread(target=second_worker)
        worker.start()
        # The second writer waits on the milestone's lock while the first is uncommitted.
        assert not done.wait(0.5)
        first.commit()
        worker.join(10)
    assert done.is_set()
    # Judged against the first promise (05-23); the move to 05-30 is its re-promise.
    row = commitments(settings)[KEY]
    assert (row["first_promised"], row["latest_promised"]) == (date(2019, 5, 23), date(2019, 5, 30))


def test_the_directory_reads_the_configuration_as_the_ledger_needs_it(tmp_path):
    """ledger.store takes plain team rules and owners (connectors.directory builds them): an
    unlisted team is judged by the same defaults as a team that sets nothing, a team's own
    settings carry over, and each source's owner is found as the configuration finds it."""
    path = tmp_path / "trackrecord.toml"
    path.write_text(
        """
[[clients]]
name = "acme"
[[clients.teams]]
name = "bare"
github = ["acme-corp/Bare"]
[[clients.teams]]
name = "set"
timezone = "Europe/Berlin"
jira = ["SET"]
on_time_basis = "latest"
members = ["dana"]
size_label_prefix = "t-shirt/"
small_labels = ["t-shirt/XS"]
small_max_points = 1.5
"""
    )
    config = load_config(path)
    directory = build_directory(config)
    assert directory.team("bare") == TeamRules()
    assert directory.team("nobody") is None
    assert directory.team("set") == TeamRules(
        timezone="Europe/Berlin",
        on_time_basis="latest",
        members=frozenset({"dana"}),
        size_label_prefix="t-shirt/",
        small_labels=("t-shirt/XS",),
        small_max_points=1.5,
    )
    for kind, key in [("github", "ACME-corp/bare"), ("jira", "set"), ("github", "other/repo")]:
        source = config.source(kind, key)
        want = Owner(source.team, source.client) if source else None
        assert directory.owner(kind, key) == want
    assert TeamRules().is_small("s", None) and not TeamRules().is_small("M", 3.5)
    assert TeamRules().is_small(None, 3)
