"""The benchmarks' full recompute and incremental rollup (bench/recompute.py, bench/rollup.py)
against the record's own figures, on both engines: what bench_recompute and bench_incremental
time must be the same figures the service answers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import create_engine, update

from bench import rollup
from bench.recompute import recompute
from ledger.tables import Commitment, Item
from tests.ledger_fixture import AS_OF, at, deliver_late, insert_ledger, row
from tests.reference_figures import reference_record


@pytest.fixture
def engine(database_url):
    insert_ledger(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def test_recompute_every_team(engine):
    with engine.connect() as conn:
        everything = recompute(conn, as_of=AS_OF)
        june_record = reference_record(
            conn, as_of=AS_OF, period_from=date(2024, 6, 1), period_to=date(2024, 6, 30)
        )
    platform = everything["platform"]
    assert set(everything) == {"platform", "web"}
    june = platform["months"]["2024-06"]
    for key in ("commitments_due", "missed", "pending", "excluded", "small_wins"):
        assert june[key] == june_record[key], key
    assert june["slip_days_p90"] == pytest.approx(5.7)
    # Streaks and trust run over the history up to as_of, as the record's do.
    assert (platform["streak_current"], platform["streak_longest"]) == (2, 2)
    assert platform["trust_score"] == pytest.approx(june_record["trust_score"])
    assert everything["web"]["streak_current"] == 0  # W2 kept 06-02, then W1 missed 06-11


def test_recompute_percentile_is_linear_interpolation(database_url):
    late = [
        row(f"S{n}", "late", (3, 1), made=at(2, 1), delivered=at(3, 1 + n), slip=n)
        for n in range(10, 0, -1)
    ]
    insert_ledger(database_url, late)
    with create_engine(database_url).connect() as conn:
        march = recompute(conn, as_of=at(6, 1))["platform"]["months"]["2024-03"]
    # 1..10: median 5.5, p90 at position 8.1 -> 9.1 (nearest rank would say 9).
    assert (march["slip_days_median"], march["slip_days_p90"]) == (5.5, pytest.approx(9.1))


def test_recompute_as_of_ignores_later_settlements(engine):
    with engine.connect() as conn:
        early = recompute(conn, as_of=datetime(2024, 5, 1, tzinfo=UTC))["platform"]
    assert (early["streak_current"], early["streak_longest"]) == (1, 1)  # H1 only
    assert early["first_win_days"] == pytest.approx(10.0)
    assert early["trust_score"]["estimate"] > 0.5


def test_rollup_after_deliveries_equals_a_fresh_recompute(engine):
    table = Commitment.__table__
    with engine.connect() as conn:
        state = rollup.build(conn, team="platform", as_of=at(6, 26))
        c12 = conn.execute(
            table.select().join(Item.__table__).where(Item.__table__.c.title == "C12")
        ).one()
    when = at(6, 27, 10)
    with engine.begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.item_id == c12.item_id)
            # As ledger.store writes a delivered row: settle_at is its settlement.
            .values(outcome="early", settled_at=when, delivered_at=when, settle_at=when)
        )
    with engine.connect() as conn:
        state = rollup.apply_delivery(
            conn, state, item_id=c12.item_id, previous_outcome="pending", as_of=when
        )
        fresh = rollup.build(conn, team="platform", as_of=when)
    assert state.fallbacks == 0
    assert state.figures["streak_current"] == 3
    assert state.figures["months"] == fresh.figures["months"]
    assert state.figures["trust_score"] == pytest.approx(fresh.figures["trust_score"])
    assert state.last_settled == fresh.last_settled
    # A settlement not after the last one counted cannot be rolled: the team is recomputed.
    with engine.connect() as conn:
        again = rollup.apply_delivery(
            conn, state, item_id=c12.item_id, previous_outcome="pending", as_of=at(6, 28)
        )
    assert again.fallbacks == 1


def test_rollup_of_a_late_delivery_recomputes_and_equals_a_fresh_one(engine):
    """C11, overdue since 06-13 (already a broken promise at its deadline), delivered late:
    it settles at that deadline, before the last settlement counted, so the team is
    recomputed rather than the broken promise counted twice."""
    with engine.connect() as conn:
        state = rollup.build(conn, team="platform", as_of=at(6, 26))
        c11 = conn.execute(
            Commitment.__table__.select()
            .join(Item.__table__)
            .where(Item.__table__.c.title == "C11")
        ).one()
    deliver_late(engine, "C11", at(6, 27), slip=15)
    with engine.connect() as conn:
        state = rollup.apply_delivery(
            conn, state, item_id=c11.item_id, previous_outcome="pending", as_of=at(6, 27)
        )
        fresh = rollup.build(conn, team="platform", as_of=at(6, 27))
    assert state.fallbacks == 1
    assert state.figures == fresh.figures
    assert state.last_settled == fresh.last_settled
