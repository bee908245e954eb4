"""ledger.store_batch: deliveries applied together give the ledger that applying each in turn
(ledger.store.apply_events) gives, whatever the deliveries, their split and their order; on
SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from connectors.directory import build_directory
from ledger import store
from ledger.events import DomainEvent, EventKind
from ledger.store_batch import Part, apply_group, groupable
from ledger.tables import Item
from tests.ledger_helpers import commitments, items, promise_changes
from trackrecord.db import session_factory

REPO = "github:Codertocat/Hello-World"
M1 = f"{REPO}/milestone/1"
M2 = f"{REPO}/milestone/2"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
_numbers = itertools.count(1000)

KINDS = [k for k in EventKind if k is not EventKind.MILESTONE_DUE_CHANGED]


@st.composite
def item_events(draw, n_items: int = 3):
    """(item index, event without its key) drawn for a few items, in any order."""
    out = []
    for n in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(KINDS))
        # No two at one instant: a tie is broken by the event id, which holds the item key,
        # and the two ways are compared on items of different keys.
        hours = timedelta(hours=draw(st.integers(0, 24 * 60)), minutes=n)
        at = datetime(2029, 1, 1, tzinfo=UTC) + hours
        fields = {
            "actor": draw(st.sampled_from(["octocat", "alice", None])),
            "title": draw(st.sampled_from(["Fix it", "Fix it now", None])),
            "item_type": "issue",
        }
        if kind in (EventKind.PROMISE_SET, EventKind.PLANNED, EventKind.DESCOPED):
            fields["scope"] = draw(st.sampled_from([M1, M2]))
        if kind is EventKind.PROMISE_SET:
            fields["promised_date"] = date(2029, 1, 1) + timedelta(days=draw(st.integers(0, 70)))
        if kind is EventKind.UPDATED:
            fields["size"] = draw(st.sampled_from(["S", "L", None]))
        if kind is EventKind.DELIVERED:
            fields["resolution"] = "completed"
        out.append((draw(st.integers(0, n_items - 1)), kind, at, fields))
    parts = draw(st.lists(st.integers(0, 3), min_size=len(out), max_size=len(out)))
    return out, parts


def _events(drawn, numbers):
    return [
        DomainEvent(source="github", item_key=f"{REPO}#{numbers[i]}", kind=kind, at=at, **fields)
        for i, kind, at, fields in drawn
    ]


def _split(events, parts):
    split: dict[int, list] = {}
    for event, part in zip(events, parts, strict=True):
        split.setdefault(part, []).append(event)
    return [split[k] for k in sorted(split)]


def _rows(settings, numbers) -> list:
    """The ledger rows of these items, keyed by their place in `numbers`."""
    keys = {f"{REPO}#{n}": i for i, n in enumerate(numbers)}
    held = items(settings)
    return [
        {keys[k]: {c: v for c, v in row.items() if c != "key"} for k, row in held.items()
         if k in keys},
        {keys[k]: row for k, row in commitments(settings).items() if k in keys},
        {i: promise_changes(settings, k) for k, i in keys.items()},
    ]  # fmt: skip


@pytest.fixture
def prepared(settings):
    # A due date change of M2 stored before anything: both ways must pull it into the items
    # that name M2 (ledger.store._pull_scope_events).
    directory = build_directory(settings.config)
    owner = directory.owner("github", "Codertocat/Hello-World")
    due = DomainEvent(source="github", item_key=M2, kind=EventKind.MILESTONE_DUE_CHANGED,
                      at=datetime(2029, 1, 20, tzinfo=UTC), promised_date=date(2029, 2, 1),
                      scope=M2, snapshot=False)  # fmt: skip
    with session_factory(settings.database_url)() as s:
        store.apply_events(s, directory, owner, [due], now=NOW)
        s.commit()
    return directory, owner


@hsettings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=item_events())
def test_a_group_gives_the_ledger_of_its_deliveries_applied_one_by_one(settings, prepared, drawn):
    directory, owner = prepared
    drawn, parts = drawn
    one_by_one, together = [next(_numbers) for _ in range(3)], [next(_numbers) for _ in range(3)]
    Session = session_factory(settings.database_url)
    with Session() as s, s.begin():
        for events in _split(_events(drawn, one_by_one), parts):
            store.apply_events(s, directory, owner, events, now=NOW)
    with Session() as s, s.begin():
        split = _split(_events(drawn, together), parts)
        assert all(groupable(events) for events in split)
        touched = apply_group(s, directory, [Part(owner, events) for events in split], now=NOW)
    assert touched == [{e.item_key for e in events} for events in split]
    assert _rows(settings, together) == _rows(settings, one_by_one)


def test_a_group_changes_only_items_its_deliveries_may_reach(settings, prepared):
    directory, owner = prepared
    mine = DomainEvent(source="github", item_key=f"{REPO}#1", kind=EventKind.OPENED,
                       at=datetime(2029, 1, 1, tzinfo=UTC), item_type="issue")  # fmt: skip
    foreign = DomainEvent(source="github", item_key="github:other/repo#1", kind=EventKind.OPENED,
                          at=datetime(2029, 1, 1, tzinfo=UTC), item_type="issue")  # fmt: skip
    with session_factory(settings.database_url)() as s, s.begin():
        touched = apply_group(s, directory, [Part(owner, [mine]), Part(owner, [foreign])], now=NOW)
    assert touched == [{f"{REPO}#1"}, set()]
    with session_factory(settings.database_url)() as s:
        assert set(s.scalars(select(Item.key))) == {f"{REPO}#1"}


def test_due_changes_and_linked_deliveries_are_not_grouped():
    at = datetime(2029, 1, 1, tzinfo=UTC)
    due = DomainEvent(source="github", item_key=M1, kind=EventKind.MILESTONE_DUE_CHANGED, at=at,
                      scope=M1, snapshot=False)  # fmt: skip
    merged = DomainEvent(source="github", item_key=f"{REPO}#2", kind=EventKind.DELIVERED, at=at,
                         links=(f"{REPO}#1",), item_type="pull_request")  # fmt: skip
    opened = DomainEvent(source="github", item_key=f"{REPO}#1", kind=EventKind.OPENED, at=at)
    assert groupable([opened]) and not groupable([]) and not groupable([opened, due])
    assert not groupable([merged])
