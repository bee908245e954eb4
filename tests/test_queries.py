"""Reading the ledger: a hand-made ledger in a real database (SQLite and PostgreSQL), its figures
computed by hand, and the service's SQL path (ledger.record) held equal to the row-by-row
reference (tests/reference_figures.py) on both engines."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Date, DateTime, bindparam, create_engine, select, text, true, update

from ledger import record, sql_dialect
from ledger.reading import C
from ledger.sql_figures import settlement_pass
from ledger.tables import Commitment, Item, settle_instant
from tests.ledger_fixture import AS_OF, at, deliver_late, insert_ledger, row
from tests.reference_figures import reference_record
from trackrecord import migrate

JUNE = {"period_from": date(2024, 6, 1), "period_to": date(2024, 6, 30)}


@pytest.fixture
def engine(database_url):
    insert_ledger(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def pure_record(conn, *, as_of=AS_OF, teams=("platform",), client=None, **period):
    """The reference's figures (row by row)."""
    return reference_record(conn, as_of=as_of, teams=teams, client=client, **(period or JUNE))


def sql_record(conn, *, as_of=AS_OF, teams=("platform",), client=None, **period):
    """The service's figures (ledger.record.figures, aggregated in SQL)."""
    found, _ = record.figures(conn, as_of=as_of, teams=teams, client=client, **(period or JUNE))
    return found


def test_hand_made_ledger(engine):
    with engine.connect() as conn:
        rec = record.record(conn, teams=["platform"], now=AS_OF, **JUNE)
    assert rec["team"] == "platform" and rec["as_of"] == "2024-06-26T00:00:00+00:00"
    assert rec["summary"] == "38% on time · 3 of 8 kept"
    assert rec["next_due"] == "2024-06-28"  # C9, the next promise ahead on 06-26
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
    # Settlement order (a late delivery at its deadline): H1 H2 kept, C2 late 06-05 00h, C1
    # kept 06-05 12h, C4 late 06-06, C3 missed, C5 dropped, C11 missed at 06-13, C6 C7 kept.
    assert (rec["streak_current"], rec["streak_longest"]) == (2, 2)
    assert rec["small_wins"] == 2  # C1, C2 (C8 is small but descoped)
    assert rec["unpromised_deliveries"] == 2  # U1, U2; U3 excluded, U4 in May, L1 linked
    # Items opened in June with a first response: U1 0.5 h, U2 2 h, L1 26 h (U3 excluded).
    assert rec["first_response_hours_median"] == 2.0
    assert rec["lead_time_days_median"] == 11.0  # of 16, 9, 10, 11, 13.5
    assert rec["first_win_days"] == 10.0  # H1 promised 04-01 12:00, delivered 04-11 12:00
    # The worked example's alpha 4.9604 and beta 4.4932, plus C11 (13 days old, 0.9047):
    # Beta(4.9604, 5.3980), quantiles worked out once with beta.ppf outside ledger/.
    trust = rec["trust_score"]
    assert trust["estimate"] == pytest.approx(4.9604 / (4.9604 + 5.3980), abs=1e-4)
    assert trust["low"] == pytest.approx(0.2368, abs=1e-4)
    assert trust["high"] == pytest.approx(0.7258, abs=1e-4)
    months = {m["month"]: m for m in rec["months"]}
    assert list(months)[0] == "2023-07" and list(months)[-1] == "2024-06"
    assert months["2024-04"]["on_time_rate"] == months["2024-05"]["on_time_rate"] == 1.0
    assert months["2024-06"]["commitments_due"] == 8
    assert months["2024-01"]["commitments_due"] == 0 and months["2024-01"]["on_time_rate"] is None


def test_overdue_pending_is_a_miss_settled_at_its_deadline(engine):
    """C11 (due 06-12) is pending in the ledger: a miss from its deadline, 06-13 00:00, on both
    paths, with no scheduler run."""
    for figures_of in (pure_record, sql_record):
        with engine.connect() as conn:
            before = figures_of(conn, as_of=at(6, 12, 23))
            after = figures_of(conn, as_of=at(6, 13))
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
        rec = record.record(conn, teams=["platform"], now=AS_OF, **JUNE)
    assert rec["excluded"] == 11 and rec["commitments_due"] == 0
    assert rec["on_time_rate"] is None and rec["slip_days_median"] is None
    assert (rec["streak_current"], rec["streak_longest"], rec["small_wins"]) == (0, 0, 0)
    assert rec["unpromised_deliveries"] == 0 and rec["first_win_days"] is None
    assert rec["first_response_hours_median"] is None  # every item's row is excluded
    assert rec["trust_score"]["estimate"] == 0.5  # back to the prior
    assert rec["summary"] == "no promises yet" and rec["next_due"] is None


def _settled_figures(rec: dict) -> tuple:
    """What settlement order decides: the streaks and the trust score."""
    trust = rec["trust_score"]
    return rec["streak_current"], rec["streak_longest"], *(trust[k] for k in trust)


def test_delivering_late_does_not_end_a_streak_never_delivering_left(database_url):
    """Issue 4, scenario 1, on both paths and both engines: A due 06-01 is still open (a miss
    at its deadline, 06-02), B and C are kept after it: June's current streak is 2. A then
    delivered late on 06-20 is broken at its deadline, still before B and C: still 2."""
    insert_ledger(
        database_url,
        [
            row("A", "pending", (6, 1), made=at(5, 20)),
            row("B", "on_time", (6, 10), made=at(5, 25), delivered=at(6, 10, 12)),
            row("C", "early", (6, 16), made=at(5, 25), delivered=at(6, 15)),
        ],
    )
    engine = create_engine(database_url)
    found = []
    for step in ("open", "late"):
        if step == "late":
            deliver_late(engine, "A", at(6, 20), slip=19)
        with engine.connect() as conn:
            pure = pure_record(conn, as_of=at(6, 25))
            sql = sql_record(conn, as_of=at(6, 25))
        assert (sql["missed"], sql["delivered_late"]) == ((1, 0) if step == "open" else (0, 1))
        assert (pure["streak_current"], pure["streak_longest"]) == (2, 2), step
        assert (sql["streak_current"], sql["streak_longest"]) == (2, 2), step
        assert sql["trust_score"] == pytest.approx(pure["trust_score"], rel=1e-9), step
        found.append(sql)
    # The trust evidence dates from the deadline, open or delivered late: the same score.
    assert _settled_figures(found[1]) == pytest.approx(_settled_figures(found[0]), rel=1e-9)
    engine.dispose()


def test_a_late_delivery_after_the_period_leaves_its_record_alone(database_url):
    """Issue 4, scenario 2: May's record (as of its end) counts A, due 05-20 and open then, as
    broken at 05-21. A delivered late on 06-10 is still broken at 05-21: May's streaks and
    trust do not change (its count moves from missed to late)."""
    insert_ledger(
        database_url,
        [
            row("A", "pending", (5, 20), made=at(5, 1)),
            row("K", "early", (5, 25), made=at(5, 1), delivered=at(5, 24)),
        ],
    )
    may = {"period_from": date(2024, 5, 1), "period_to": date(2024, 5, 31)}
    engine = create_engine(database_url)
    with engine.connect() as conn:
        then = record.record(conn, teams=["platform"], now=at(6, 5), **may)
        then_pure = pure_record(conn, as_of=at(6, 1), **may)
    deliver_late(engine, "A", at(6, 10), slip=21)
    with engine.connect() as conn:
        now = record.record(conn, teams=["platform"], now=at(6, 15), **may)
        now_pure = pure_record(conn, as_of=at(6, 1), **may)
    engine.dispose()
    assert then["as_of"] == now["as_of"] == "2024-06-01T00:00:00+00:00"
    assert (then["missed"], now["missed"], now["delivered_late"]) == (1, 0, 1)
    assert (now["streak_current"], now["streak_longest"]) == (1, 1)
    assert _settled_figures(now) == pytest.approx(_settled_figures(then), rel=1e-9)
    assert _settled_figures(now_pure) == pytest.approx(_settled_figures(then_pure), rel=1e-9)
    assert now["trust_score"] == pytest.approx(now_pure["trust_score"], rel=1e-9)
    # Kept 8 days before 06-01 (0.9403) and broken 11 days before (0.9188).
    assert now["trust_score"]["estimate"] == pytest.approx(0.5028, abs=1e-4)


PERIODS = [
    JUNE,
    {"period_from": date(2024, 4, 1), "period_to": date(2024, 7, 31)},
    {"period_from": date(2024, 6, 10), "period_to": date(2024, 6, 10)},
    {"period_from": date(2023, 1, 1), "period_to": date(2023, 12, 31)},
]


@pytest.mark.parametrize("period", PERIODS, ids=["june", "apr-jul", "one-day", "empty"])
@pytest.mark.parametrize("owner", ["platform", "web", "client"])
def test_sql_path_agrees_with_pure_path(engine, period, owner):
    kwargs = {"client": "acme", "teams": ["platform", "web"]} if owner == "client" else {}
    kwargs = kwargs or {"teams": [owner]}
    with engine.connect() as conn:
        pure = pure_record(conn, **kwargs, **period)
        sql = sql_record(conn, **kwargs, **period)
    assert sql.keys() == pure.keys()
    for key, value in pure.items():
        if key == "trust_score":
            assert sql[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert sql[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def _random_ledger(seed: int, n: int = 300) -> list[dict]:
    """A team's random history: every outcome, many settlements at the same instant (ties broken
    by item id), overdue pending rows, exclusions, settlements after the period and after
    as_of."""
    rng = random.Random(seed)
    outcomes = ["early", "on_time", "late", "missed", "dropped", "descoped", "pending"]
    rows = []
    for n_ in range(n):
        outcome = rng.choice(outcomes)
        promised = date(2024, 1, 1) + timedelta(days=rng.randrange(200))
        made = datetime.combine(promised, datetime.min.time(), UTC) - timedelta(days=10)
        # Whole days only, so that many rows settle at the very same instant.
        when = made + timedelta(days=rng.randrange(1, 25))
        kwargs = {"made": made, "excluded": rng.random() < 0.05, "small": rng.random() < 0.3}
        if outcome in ("early", "on_time", "late"):
            kwargs.update(delivered=when, slip=rng.randrange(1, 9) if outcome == "late" else None)
        elif outcome in ("missed", "dropped", "descoped"):
            kwargs["settled"] = when
        rows.append(row(f"R{n_}", outcome, promised, **kwargs))
    return rows


RANDOM_PERIODS = [
    {"period_from": date(2024, 3, 1), "period_to": date(2024, 3, 31)},
    {"period_from": date(2024, 1, 1), "period_to": date(2024, 7, 31)},
    {"period_from": date(2024, 5, 10), "period_to": date(2024, 5, 10)},
]


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_path_agrees_with_pure_path_on_random_ledgers(database_url, seed):
    """Streaks (ties, misses at their deadline, rows settled after the period's end), trust
    evidence settled after the period but before as_of, percentiles: both paths agree."""
    insert_ledger(database_url, _random_ledger(seed))
    as_of = datetime(2024, 6, 15, tzinfo=UTC)
    with create_engine(database_url).connect() as conn:
        for period in RANDOM_PERIODS:
            pure = pure_record(conn, as_of=as_of, **period)
            sql = sql_record(conn, as_of=as_of, **period)
            for key, value in pure.items():
                if key == "trust_score":
                    assert sql[key] == pytest.approx(value, rel=1e-9), (period, key)
                else:
                    expected = pytest.approx(value) if isinstance(value, float) else value
                    assert sql[key] == expected, (period, key)


def test_sqlite_walk_through_an_ordered_select_agrees(database_url):
    """The settlement pass of a client (whose rows have no settlement-order index, so SQLite
    walks an ordered SELECT) equals its team's, which SQLite aggregates in index order."""
    insert_ledger(database_url, _random_ledger(3))
    as_of = datetime(2024, 6, 15, tzinfo=UTC)
    with create_engine(database_url).connect() as conn:
        for until in (as_of, datetime(2024, 5, 1, tzinfo=UTC)):
            common = {"where": true(), "as_of": as_of, "until": until, "half_life_days": 90}
            by_team = settlement_pass(conn, owner=C.c.team, **common)["platform"]
            by_client = settlement_pass(conn, owner=C.c.client, **common)["acme"]
            assert (by_client.current, by_client.longest) == (by_team.current, by_team.longest)
            assert by_client.w_kept == pytest.approx(by_team.w_kept, rel=1e-12)
            assert by_client.w_broken == pytest.approx(by_team.w_broken, rel=1e-12)


def test_sqlite_settlement_walk_refuses_rows_out_of_order():
    walk = sql_dialect.SettlementWalk()
    walk.step(1, 1, "2024-01-02 00:00:00.000000", 5, 0.5)
    walk.step(1, 1, "2024-01-02 00:00:00.000000", 7, 0.5)  # a tie: item id decides
    assert walk.ordered and walk.finalize() == "1.0 0.0 00"
    walk.step(0, 1, "2024-01-01 00:00:00.000000", 9, 0.5)
    assert walk.finalize() is None


def test_sqlite_rows_out_of_order_fall_back_to_an_ordered_select(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate.upgrade(url)
    insert_ledger(url, _random_ledger(4))
    as_of = datetime(2024, 6, 15, tzinfo=UTC)

    class Unordered(sql_dialect.SettlementWalk):
        def finalize(self):
            return None  # as if SQLite had handed the rows over out of order

    with create_engine(url).connect() as conn:
        found = sql_record(conn, as_of=as_of, **RANDOM_PERIODS[1])
        monkeypatch.setattr(sql_dialect, "SettlementWalk", Unordered)
        fallback = sql_record(conn, as_of=as_of, **RANDOM_PERIODS[1])
        assert conn.execute(text("SELECT tr_settlement(1, 1, 'x', 1, 1.0)")).scalar() is None
    assert fallback == found


def test_migration_0004_fills_settle_at_from_each_row(database_url):
    """Rows written before 0004 get their settle_at from their own columns, as
    ledger.tables.settle_instant would write it."""
    migrate.downgrade(database_url, "0003")
    engine = create_engine(database_url)
    rows = [
        row("D", "late", (6, 4), made=at(5, 1), delivered=at(6, 7, 12), slip=3),
        row("P", "pending", (6, 12), made=at(6, 2)),
        row("M", "missed", (6, 9), made=at(5, 30), settled=at(6, 10)),
        row("U", "unpromised", delivered=at(6, 3)),
    ]
    columns = ("promised_date", "deadline", "outcome", "settled_at", "delivered_at")
    with engine.begin() as conn:
        for n, r in enumerate(rows, 1):
            conn.execute(
                Item.__table__.insert().values(
                    id=n, key=r["key"], source="github", source_key="acme/x", team="t",
                    client="c", status="open", links=[], updated_at=at(7, 1),
                )
            )  # fmt: skip
            values = {c: r[c] for c in columns}
            conn.execute(
                text(
                    "INSERT INTO commitments (item_id, team, client, promised_date, deadline, "
                    "outcome, settled_at, delivered_at, repromise_count, small, excluded, "
                    "updated_at) VALUES (:item_id, 't', 'c', :promised_date, :deadline, "
                    ":outcome, :settled_at, :delivered_at, 0, false, false, :updated_at)"
                ).bindparams(
                    bindparam("promised_date", type_=Date()),
                    *(bindparam(c, type_=DateTime(True)) for c in ("deadline", "settled_at")),
                    bindparam("delivered_at", type_=DateTime(True)),
                    bindparam("updated_at", type_=DateTime(True)),
                ),
                {"item_id": n, "updated_at": at(7, 1), **values},
            )
    engine.dispose()
    migrate.upgrade(database_url)
    with create_engine(database_url).connect() as conn:
        found = {r.item_id: r for r in conn.execute(Commitment.__table__.select()).mappings().all()}
    for n, r in enumerate(rows, 1):
        expected = settle_instant(**{c: r[c] for c in columns})
        got = found[n]["settle_at"]
        assert (got.replace(tzinfo=UTC) if got and got.tzinfo is None else got) == expected


def test_migration_0005_settles_late_rows_at_their_deadline(database_url):
    """Late rows written under 0004 (settle_at = their delivery) are moved to their deadline;
    other rows keep theirs; the downgrade puts them back."""
    rows = [
        row("D", "late", (6, 4), made=at(5, 1), delivered=at(6, 7, 12), slip=3),
        row("K", "early", (6, 9), made=at(5, 30), delivered=at(6, 8)),
        row("M", "missed", (6, 9), made=at(5, 30), settled=at(6, 10)),
        row("P", "pending", (6, 12), made=at(6, 2)),
        row("X", "dropped", (6, 4), made=at(5, 1), settled=at(6, 9)),  # after its deadline
        row("Y", "dropped", (6, 9), made=at(5, 1), settled=at(6, 3)),  # before its deadline
    ]
    insert_ledger(database_url, rows)
    engine = create_engine(database_url)
    table = Commitment.__table__

    def settle_at() -> dict:
        with engine.connect() as conn:
            found = conn.execute(
                select(Item.__table__.c.title, table.c.settle_at).join(Item.__table__)
            )
            return {k: v.replace(tzinfo=UTC) if v.tzinfo is None else v for k, v in found}

    with engine.begin() as conn:  # as 0004 wrote a late row and a late drop
        conn.execute(update(table).where(table.c.outcome == "late").values(settle_at=at(6, 7, 12)))
        x_id = select(Item.__table__.c.id).where(Item.__table__.c.title == "X").scalar_subquery()
        conn.execute(update(table).where(table.c.item_id == x_id).values(settle_at=at(6, 9)))
    engine.dispose()
    migrate.downgrade(database_url, "0004")
    migrate.upgrade(database_url)
    assert settle_at() == {
        "D": at(6, 5),
        "K": at(6, 8),
        "M": at(6, 10),
        "P": at(6, 13),
        "X": at(6, 5),
        "Y": at(6, 3),
    }
    migrate.downgrade(database_url, "0004")
    assert (settle_at()["D"], settle_at()["X"]) == (at(6, 7, 12), at(6, 9))
    migrate.upgrade(database_url)
    engine.dispose()
