"""Reading the ledger: a hand-made ledger in a real database (SQLite and PostgreSQL), its figures
computed by hand, and the SQL aggregation path held equal to the pure `track_record` path."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import create_engine, update

from ledger import figures, records, rollup
from ledger.metrics import track_record
from ledger.queries import load_history
from ledger.tables import Commitment, Item
from tests.ledger_fixture import AS_OF, at, insert_ledger, row

JUNE = {"period_from": date(2024, 6, 1), "period_to": date(2024, 6, 30)}


@pytest.fixture
def engine(database_url):
    insert_ledger(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def pure_record(conn, *, as_of=AS_OF, teams=("platform",), client=None, **period):
    owner = {"client": client} if client else {"teams": list(teams)}
    history = load_history(conn, as_of=as_of, **owner)
    return track_record(history, as_of=as_of, **(period or JUNE))


def test_hand_made_ledger(engine):
    with engine.connect() as conn:
        rec = records.record(conn, teams=["platform"], now=AS_OF, **JUNE)
    assert rec["team"] == "platform" and rec["as_of"] == "2024-06-26T00:00:00+00:00"
    # June by promised date: C1..C11 of platform (W1, W2 are team web; C12 is July).
    # C11 is pending in the ledger but its deadline 06-13 has passed: a second miss.
    assert {k: rec[k] for k in ("delivered_early", "delivered_on_time", "delivered_late")} == {
        "delivered_early": 2,  # C6, C7
        "delivered_on_time": 1,  # C1
        "delivered_late": 2,  # C2, C4
    }
    assert (rec["missed"], rec["dropped"], rec["descoped"], rec["pending"]) == (2, 1, 1, 1)
    assert rec["excluded"] == 1  # C10
    assert rec["commitments_due"] == 8  # 2 + 1 + 2 + 2 + 1
    assert rec["on_time_rate"] == 3 / 8 and rec["say_do_ratio"] == 5 / 8
    assert (rec["slip_days_median"], rec["slip_days_p90"]) == (4.5, pytest.approx(5.7))
    # Settlement order: H1 H2 C1 kept, C2 C3 C4 C5 broken, C11 missed at 06-13, C6 C7 kept.
    assert (rec["streak_current"], rec["streak_longest"]) == (2, 3)
    assert rec["small_wins"] == 2  # C1, C2 (C8 is small but descoped)
    assert rec["unpromised_deliveries"] == 2  # U1, U2; U3 excluded, U4 in May, L1 linked
    # Items opened in June with a first response: U1 0.5 h, U2 2 h, L1 26 h (U3 excluded).
    assert rec["first_response_hours_median"] == 2.0
    assert rec["lead_time_days_median"] == 11.0  # of 16, 9, 10, 11, 13.5
    assert rec["first_win_days"] == 10.0  # H1 promised 04-01 12:00, delivered 04-11 12:00
    # The worked example's alpha 4.9604 and beta 4.5434, plus C11 (13 days old, 0.9047).
    trust = rec["trust_score"]
    assert trust["estimate"] == pytest.approx(4.9604 / (4.9604 + 5.4481), abs=1e-4)
    assert trust["low"] == pytest.approx(0.2354, abs=1e-4)
    assert trust["high"] == pytest.approx(0.7231, abs=1e-4)
    months = {m["month"]: m for m in rec["months"]}
    assert list(months)[0] == "2023-07" and list(months)[-1] == "2024-06"
    assert months["2024-04"]["on_time_rate"] == months["2024-05"]["on_time_rate"] == 1.0
    assert months["2024-06"]["commitments_due"] == 8
    assert months["2024-01"]["commitments_due"] == 0 and months["2024-01"]["on_time_rate"] is None


def test_overdue_pending_is_a_miss_settled_at_its_deadline(engine):
    with engine.connect() as conn:
        before = pure_record(conn, as_of=at(6, 12, 23))
        after = pure_record(conn, as_of=at(6, 13))
    assert (before["missed"], before["pending"]) == (1, 2)
    assert (after["missed"], after["pending"]) == (2, 1)


def test_excluded_rows_are_left_out_of_every_figure(engine, database_url):
    with engine.begin() as conn:
        conn.execute(
            update(Commitment.__table__)
            .where(Commitment.__table__.c.team == "platform")
            .values(excluded=True)
        )
    with engine.connect() as conn:
        rec = records.record(conn, teams=["platform"], now=AS_OF, **JUNE)
    assert rec["excluded"] == 11 and rec["commitments_due"] == 0
    assert rec["on_time_rate"] is None and rec["slip_days_median"] is None
    assert (rec["streak_current"], rec["streak_longest"], rec["small_wins"]) == (0, 0, 0)
    assert rec["unpromised_deliveries"] == 0 and rec["first_win_days"] is None
    assert rec["first_response_hours_median"] is None  # every item's row is excluded
    assert rec["trust_score"]["estimate"] == 0.5  # back to the prior


PERIODS = [
    JUNE,
    {"period_from": date(2024, 4, 1), "period_to": date(2024, 7, 31)},
    {"period_from": date(2024, 6, 10), "period_to": date(2024, 6, 10)},
    {"period_from": date(2023, 1, 1), "period_to": date(2023, 12, 31)},
]


@pytest.mark.parametrize("period", PERIODS, ids=["june", "apr-jul", "one-day", "empty"])
@pytest.mark.parametrize("owner", ["platform", "web", "client"])
def test_sql_path_agrees_with_pure_path(engine, period, owner):
    kwargs = {"client": "acme"} if owner == "client" else {"teams": [owner]}
    with engine.connect() as conn:
        pure = pure_record(conn, **kwargs, **period)
        sql = figures.record_sql(
            conn,
            as_of=AS_OF,
            team=None if owner == "client" else owner,
            client="acme" if owner == "client" else None,
            **period,
        )
    assert sql.keys() == pure.keys()
    for key, value in pure.items():
        if key == "trust_score":
            assert sql[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert sql[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_sql_percentile_is_linear_interpolation(database_url):
    late = [
        row(f"S{n}", "late", (3, 1), made=at(2, 1), delivered=at(3, 1 + n), slip=n)
        for n in range(10, 0, -1)
    ]
    insert_ledger(database_url, late)
    with create_engine(database_url).connect() as conn:
        march = figures.recompute(conn, as_of=at(6, 1))["platform"]["months"]["2024-03"]
    # 1..10: median 5.5, p90 at position 8.1 -> 9.1 (nearest rank would say 9).
    assert (march["slip_days_median"], march["slip_days_p90"]) == (5.5, pytest.approx(9.1))


def test_recompute_every_team(engine):
    with engine.connect() as conn:
        everything = figures.recompute(conn, as_of=AS_OF)
        june_record = pure_record(conn)
    platform = everything["platform"]
    assert set(everything) == {"platform", "web"}
    june = platform["months"]["2024-06"]
    for key in ("commitments_due", "missed", "pending", "excluded", "small_wins"):
        assert june[key] == june_record[key], key
    assert june["slip_days_p90"] == pytest.approx(5.7)
    # Streaks and trust run over the history up to as_of, as the record's do.
    assert (platform["streak_current"], platform["streak_longest"]) == (2, 3)
    assert platform["trust_score"] == pytest.approx(june_record["trust_score"])
    assert everything["web"]["streak_current"] == 0  # W2 kept 06-02, then W1 missed 06-11


def test_rollup_after_deliveries_equals_a_fresh_recompute(engine):
    table = Commitment.__table__
    with engine.connect() as conn:
        state = rollup.build(conn, team="platform", as_of=at(6, 26))
        c12 = conn.execute(
            table.select().join(Item.__table__).where(Item.__table__.c.title == "C12")
        ).one()
    events = [(c12.item_id, "early", at(6, 27, 10))]
    for item_id, outcome, when in events:
        with engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.item_id == item_id)
                .values(outcome=outcome, settled_at=when, delivered_at=when)
            )
        with engine.connect() as conn:
            state = rollup.apply_delivery(
                conn, state, item_id=item_id, previous_outcome="pending", as_of=when
            )
    with engine.connect() as conn:
        fresh = rollup.build(conn, team="platform", as_of=at(6, 27, 10))
    assert state.fallbacks == 0
    assert state.figures["streak_current"] == 3
    assert state.figures["months"] == fresh.figures["months"]
    assert state.figures["trust_score"] == pytest.approx(fresh.figures["trust_score"])
    assert state.last_settled == fresh.last_settled
    # A settlement not after the last one counted cannot be rolled: the team is recomputed.
    with engine.connect() as conn:
        late = rollup.apply_delivery(
            conn, state, item_id=c12.item_id, previous_outcome="pending", as_of=at(6, 28)
        )
    assert late.fallbacks == 1


def test_recompute_as_of_ignores_later_settlements(engine):
    with engine.connect() as conn:
        early = figures.recompute(conn, as_of=datetime(2024, 5, 1, tzinfo=UTC))["platform"]
    assert (early["streak_current"], early["streak_longest"]) == (1, 1)  # H1 only
    assert early["first_win_days"] == pytest.approx(10.0)
    assert early["trust_score"]["estimate"] > 0.5
