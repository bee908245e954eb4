"""PostgreSQL transactions of the drain (workers.batch_plan): a transaction waits for its first
milestone only, fills up with the milestones no other worker holds, leaves a held one for
later, and keeps the order of one milestone's chunks. Every delivery applied exactly once."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from tests.test_drain import ledger, milestoned, post
from trackrecord.db import session_factory
from trackrecord.models import Delivery
from workers.batch_plan import Chunk, pick, plan

MILESTONES = (1, 2, 3)


def in_milestone(issue: int, milestone: int) -> dict:
    doc = milestoned(issue)
    mark = copy.deepcopy(doc["milestone"])
    mark.update(number=milestone, id=1_000 + milestone, title=f"Sprint {milestone}")
    doc["milestone"] = doc["issue"]["milestone"] = mark
    return doc


def _rows(settings) -> list[Delivery]:
    with session_factory(settings.database_url)() as s:
        return s.scalars(select(Delivery).order_by(Delivery.id)).all()


def _scope(milestone: int) -> str:
    return f"github:Codertocat/Hello-World/milestone/{milestone}"


def test_plan_puts_each_milestone_in_its_own_chunk_and_a_moved_item_in_its_first(client, settings):
    for issue in range(1, 7):
        post(client, in_milestone(issue, MILESTONES[issue % 3]), f"plan-{issue}")
    post(client, in_milestone(1, 3), "plan-1-moved")  # issue 1 moves from milestone 2 to 3
    segments, prepared = plan(_rows(settings), 20)
    assert len(segments) == 1 and len(prepared) == 7
    chunks = {chunk.scopes: chunk for chunk in segments[0]}
    moved = frozenset({_scope(2), _scope(3)})
    # Issue 1's chunk holds both of its milestones from the start: the move and the rest of 2.
    assert set(chunks) == {frozenset({_scope(1)}), moved, frozenset({_scope(3)})}
    numbers = {
        scopes: [prepared[r.id].doc["issue"]["number"] for r in chunk.rows]
        for scopes, chunk in chunks.items()
    }
    assert numbers[moved] == [1, 4, 1] and numbers[frozenset({_scope(3)})] == [2, 5]


def test_a_transaction_skips_milestones_another_worker_holds_and_waits_only_when_all_are(
    client, settings
):
    from workers import context
    from workers.jobs import Batch

    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers by itself")

    for issue in range(1, 10):
        post(client, in_milestone(issue, MILESTONES[issue % 3]), f"held-{issue}")
    segments, prepared = plan(_rows(settings), 20)
    # Milestone 2 first: held by another worker, it must not make this one wait.
    pending = sorted(segments[0], key=lambda c: (_scope(2) not in c.scopes, sorted(c.scopes)))
    Session = context.sessions()

    def bounded(session):  # a pick that waits for milestone 2 fails here instead of hanging
        session.execute(text("SET LOCAL lock_timeout = '2s'"))
        return pick(session, pending)

    other = session_factory(settings.database_url)()  # another worker, in milestone 2
    other.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": _scope(2)})
    try:
        batch = Batch(Session)
        taken, ok = batch.together((), prepared, bounded)
        assert ok and len(taken) == 6
        assert [c.scopes for c in pending] == [frozenset({_scope(2)})]
        assert ledger(settings)["deliveries"] == {"processed": 6, "queued": 3}
        # Now every milestone left is held: the transaction waits for it (here, until the
        # lock timeout), and commits nothing.
        with pytest.raises(OperationalError):
            batch.together((), prepared, bounded)
        assert ledger(settings)["deliveries"] == {"processed": 6, "queued": 3}
    finally:
        other.rollback()
        other.close()
    taken, ok = batch.together((), prepared, bounded)
    assert ok and len(taken) == 3 and pending == []
    seen = ledger(settings)
    assert seen["deliveries"] == {"processed": 9}
    assert seen["items"] == seen["commitments"] == 9


def test_one_milestones_chunks_keep_their_order_when_the_next_does_not_fit(settings):
    # pick reads only the chunks' sizes and scopes; rows stand for deliveries.
    first = Chunk([f"x{i}" for i in range(20)], frozenset({"x"}))
    a1 = Chunk([f"a{i}" for i in range(15)], frozenset({"a"}))
    a2 = Chunk([f"a{i}" for i in range(15, 20)], frozenset({"a"}))  # fits, but after a1
    b = Chunk(["b0"], frozenset({"b"}))
    pending = [first, a1, a2, b]
    with session_factory(settings.database_url)() as s, s.begin():
        assert pick(s, pending, limit=30) == first.rows
    assert pending == [a1, a2, b]
    with session_factory(settings.database_url)() as s, s.begin():
        assert pick(s, pending, limit=30) == a1.rows + a2.rows + b.rows
    assert pending == []
