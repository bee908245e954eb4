"""The track-record figures against a ledger computed by hand (the worked example of
docs/metrics.md), plus the edge cases of each figure, on the row-by-row reference
(tests/reference_figures.py) that the SQL path is held equal to; and the service's own pure
pieces: the percentile method, the streak rule over settlement-order marks, the headline words.
No database, no Redis."""

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ledger.outcomes import Outcome
from ledger.reading import month_starts
from ledger.record import figures, headline
from ledger.sql_dialect import percentile
from ledger.sql_figures import streak_runs
from tests.reference_figures import (
    CommitmentValue,
    first_win_days,
    outcome_counts,
    ratios,
    settlement_order,
    streaks,
    track_record,
)

E, T, L = Outcome.EARLY, Outcome.ON_TIME, Outcome.LATE
M, D, S, P = Outcome.MISSED, Outcome.DROPPED, Outcome.DESCOPED, Outcome.PENDING


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


def row(key, outcome, promised, *, made=None, settled=None, delivered=None, slip=None, **kw):
    """A commitment of team core in 2024; a delivery settles it unless told otherwise. Its
    deadline is the end of the promised day (UTC midnight after it), as the ledger rules put it
    for a team in UTC."""
    promised_date = date(2024, *promised)
    kw.setdefault("deadline", datetime.combine(promised_date + timedelta(days=1), _MIDNIGHT))
    return CommitmentValue(
        key=key,
        team="core",
        promised_date=promised_date,
        promised_at=made,
        outcome=outcome,
        settled_at=settled if settled is not None else delivered,
        delivered_at=delivered,
        slip_days=slip,
        **kw,
    )


_MIDNIGHT = datetime.min.time().replace(tzinfo=UTC)

# The worked example of docs/metrics.md. Missed commitments settle at their deadline, and late
# deliveries are settled there too: in this example the end of the promised day (UTC).
LEDGER = [
    row("H1", E, (4, 15), made=at(4, 1, 12), delivered=at(4, 11, 12)),
    row("H2", T, (5, 10), made=at(4, 20), delivered=at(5, 10, 12)),
    row("C1", T, (6, 5), made=at(5, 20, 12), delivered=at(6, 5, 12), small=True),
    row("C2", L, (6, 4), made=at(5, 29, 12), delivered=at(6, 7, 12), slip=3, small=True),
    row("C3", M, (6, 9), made=at(5, 30), settled=at(6, 10)),
    row("C4", L, (6, 5), made=at(6, 1), delivered=at(6, 11), slip=6),
    row("C5", D, (6, 25), made=at(6, 2), settled=at(6, 12, 12)),
    row("C6", E, (6, 24), made=at(6, 3), delivered=at(6, 14)),
    row("C7", E, (6, 18), made=at(6, 4), delivered=at(6, 17, 12)),
    row("C8", S, (6, 20), made=at(6, 5), settled=at(6, 15), small=True),
    row("C9", P, (6, 28), made=at(6, 10)),
    row("C10", M, (6, 14), made=at(6, 1), settled=at(6, 15), excluded=True),
]
AS_OF = at(6, 26)


@pytest.fixture
def record():
    return track_record(
        LEDGER,
        period_from=date(2024, 6, 1),
        period_to=date(2024, 6, 30),
        as_of=AS_OF,
        unpromised_deliveries=4,
        first_response_hours=[0.5, 2.0, 3.0, 26.0],
    )


def test_worked_example_counts(record):
    # June by promised date: C1..C10. C10 is excluded; C8 descoped; C9 still open before its
    # deadline. Due = the settled ones C1..C7 = 7.
    assert record["commitments_due"] == 7
    assert record["pending"] == 1  # C9
    assert record["delivered_early"] == 2  # C6, C7
    assert record["delivered_on_time"] == 1  # C1
    assert record["delivered_late"] == 2  # C2, C4
    assert record["missed"] == 1  # C3 (C10 is excluded)
    assert record["dropped"] == 1  # C5
    assert record["descoped"] == 1  # C8
    assert record["excluded"] == 1  # C10


def test_worked_example_ratios(record):
    # kept = early + on time = 3 of 7 due; delivered = 3 kept + 2 late = 5 of 7.
    assert record["on_time_rate"] == pytest.approx(3 / 7)
    assert record["say_do_ratio"] == pytest.approx(5 / 7)


def test_worked_example_slip(record):
    # Slips of the late deliveries: C2 = 3, C4 = 6. Median = (3 + 6) / 2 = 4.5; p90 by linear
    # interpolation sits at position (2 - 1) * 0.9 = 0.9: 3 + 0.9 * (6 - 3) = 5.7.
    assert record["slip_days_median"] == pytest.approx(4.5)
    assert record["slip_days_p90"] == pytest.approx(5.7)


def test_worked_example_streaks(record):
    # By settlement time (C8 descoped, C9 pending, C10 excluded are skipped), the late ones at
    # their deadlines: H1 K 04-11, H2 K 05-10 | C2 late 06-05 00h (promised 06-04) | C1 K 06-05
    # 12h | C4 late 06-06 00h, C3 missed 06-10 (its deadline), C5 dropped 06-12 | C6 K 06-14,
    # C7 K 06-17. Longest run = H1, H2 = 2 (C6, C7 too); the run at the end = C6, C7 = 2.
    assert record["streak_current"] == 2
    assert record["streak_longest"] == 2


def test_worked_example_streak_needs_the_miss_at_its_deadline():
    # Had C3's miss been stamped when it was noticed (as_of, 06-26) instead of at its deadline,
    # it would come after C6 and C7 and the current streak would be 0, as docs/metrics.md says.
    noticed = [dataclasses.replace(c, settled_at=AS_OF) if c.key == "C3" else c for c in LEDGER]
    assert streaks(settlement_order(noticed, until=at(7, 1))) == (0, 2)


def test_worked_example_small_wins_and_times(record):
    # Small deliveries in June: C1 (on time) and C2 (late); C8 is small but descoped.
    assert record["small_wins"] == 2
    assert record["unpromised_deliveries"] == 4
    # [0.5, 2, 3, 26]: median = (2 + 3) / 2.
    assert record["first_response_hours_median"] == pytest.approx(2.5)
    # Lead times of June's deliveries, promise made -> delivered:
    # C1 05-20 12h -> 06-05 12h = 16; C2 05-29 12h -> 06-07 12h = 9; C4 06-01 -> 06-11 = 10;
    # C6 06-03 -> 06-14 = 11; C7 06-04 -> 06-17 12h = 13.5. Sorted 9, 10, 11, 13.5, 16: median 11.
    assert record["lead_time_days_median"] == pytest.approx(11.0)
    # First promise H1 made 04-01 12h, first kept delivery H1 on 04-11 12h: 10 days.
    assert record["first_win_days"] == pytest.approx(10.0)


def test_worked_example_trust(record):
    # Ages at 06-26 00h and weights 0.5 ** (age / 90), by hand:
    # kept   H1 75.5 d 0.5591, H2 46.5 d 0.6990, C1 20.5 d 0.8539, C6 12 d 0.9117, C7 8.5 d 0.9366
    # broken C2 21 d 0.8507 (its deadline 06-05), C3 16 d 0.8841, C4 20 d 0.8572 (deadline
    # 06-06), C5 13.5 d 0.9013
    # alpha = 1 + 3.9604 = 4.9604, beta = 1 + 3.4932 = 4.4932, mean = 4.9604 / 9.4536 = 0.5247.
    # Quantiles of Beta(4.9604, 4.4932), worked out once with beta.ppf outside ledger/:
    # 0.2669 and 0.7763.
    trust = record["trust_score"]
    assert set(trust) == {"estimate", "low", "high"}
    assert trust["estimate"] == pytest.approx(0.5247, abs=1e-4)
    assert trust["low"] == pytest.approx(0.2669, abs=1e-4)
    assert trust["high"] == pytest.approx(0.7763, abs=1e-4)


def test_worked_example_months(record):
    months = record["months"]
    # Twelve calendar months ending with June 2024.
    assert [m["month"] for m in months][:2] == ["2023-07", "2023-08"]
    assert months[-1]["month"] == "2024-06"
    assert len(months) == 12
    by_month = {m["month"]: m for m in months}
    # April: H1 early. May: H2 on time. June: the same counts as the period.
    assert by_month["2024-04"]["delivered_early"] == 1
    assert by_month["2024-04"]["on_time_rate"] == 1.0
    assert by_month["2024-05"]["delivered_on_time"] == 1
    assert by_month["2024-05"]["say_do_ratio"] == 1.0
    assert by_month["2024-06"]["commitments_due"] == 7
    assert by_month["2024-06"]["on_time_rate"] == pytest.approx(3 / 7)
    assert by_month["2024-06"]["say_do_ratio"] == pytest.approx(5 / 7)
    assert by_month["2023-12"]["commitments_due"] == 0
    assert by_month["2023-12"]["on_time_rate"] is None


def test_record_has_exactly_the_issue_fields(record):
    issue_fields = {
        "commitments_due", "pending", "delivered_early", "delivered_on_time", "delivered_late",
        "missed", "dropped", "descoped", "on_time_rate", "say_do_ratio", "slip_days_median",
        "slip_days_p90", "streak_current", "streak_longest", "small_wins",
        "unpromised_deliveries", "first_response_hours_median", "lead_time_days_median",
        "first_win_days", "trust_score", "months",
    }  # fmt: skip
    assert set(record) == issue_fields | {"excluded"}


def test_empty_period_gives_null_ratios_and_percentiles():
    # Nothing promised in January 2024: every count 0, every ratio and median null; the streak
    # and trust still come from the history up to then (none settled by 01-31 here).
    record = track_record(
        LEDGER, period_from=date(2024, 1, 1), period_to=date(2024, 1, 31), as_of=at(2, 1)
    )
    assert record["commitments_due"] == 0
    assert record["on_time_rate"] is None
    assert record["say_do_ratio"] is None
    assert record["slip_days_median"] is None
    assert record["slip_days_p90"] is None
    assert record["lead_time_days_median"] is None
    assert record["first_response_hours_median"] is None
    assert record["first_win_days"] is None
    assert (record["streak_current"], record["streak_longest"]) == (0, 0)
    assert record["trust_score"] == pytest.approx({"estimate": 0.5, "low": 0.05, "high": 0.95})


def test_only_pending_and_descoped_is_not_due():
    rows = [row("a", P, (6, 28)), row("b", S, (6, 20), settled=at(6, 1))]
    counts = outcome_counts(rows)
    assert counts["commitments_due"] == 0
    assert (counts["pending"], counts["descoped"]) == (1, 1)
    assert ratios(counts) == {"on_time_rate": None, "say_do_ratio": None}


def test_excluded_commitments_are_ignored_everywhere():
    # The same ledger plus a recent excluded late delivery and an excluded earlier promise:
    # if either counted, the counts, slips, streak, first win and trust would all move.
    extra = [
        row("X1", L, (6, 20), made=at(6, 1), delivered=at(6, 25), slip=5, small=True,
            excluded=True),
        row("X2", E, (6, 2), made=at(3, 1), delivered=at(3, 2), excluded=True),
    ]  # fmt: skip
    kwargs = dict(period_from=date(2024, 6, 1), period_to=date(2024, 6, 30), as_of=AS_OF)
    with_excluded = track_record(LEDGER + extra, **kwargs)
    without = track_record(LEDGER, **kwargs)
    assert with_excluded["excluded"] == without["excluded"] + 2
    assert with_excluded["months"][-1]["excluded"] == without["months"][-1]["excluded"] + 2
    for record in (with_excluded, without):
        del record["excluded"]
        for month in record["months"]:
            del month["excluded"]
    assert with_excluded == without


def test_streak_orders_by_settlement_not_promised_date():
    # "a" was promised for 06-10 and delivered late (broken at its deadline, 06-11 00h); "b"
    # was promised for 06-12 and delivered early on 06-05. By promised date the late one comes
    # first and the run at the end is 1; by settlement the late one comes last and ends it.
    rows = [
        row("a", L, (6, 10), delivered=at(6, 20), slip=10),
        row("b", E, (6, 12), delivered=at(6, 5)),
    ]
    assert settlement_order(rows, until=at(7, 1)) == [E, L]
    assert streaks(settlement_order(rows, until=at(7, 1))) == (0, 1)


# Issue 4: "a promise not delivered by its deadline is settled as broken at the deadline".
# "A" was due 06-01 (deadline 06-02 00h) and not delivered then; "B" and "C" were kept after.
LATE_A = row("A", L, (6, 1), made=at(5, 20), delivered=at(6, 20), slip=19)
MISSED_A = row("A", M, (6, 1), made=at(5, 20), settled=at(6, 2))
KEPT_AFTER_A = [
    row("B", T, (6, 10), made=at(5, 25), delivered=at(6, 10, 12)),
    row("C", E, (6, 16), made=at(5, 25), delivered=at(6, 15)),
]


def test_a_late_delivery_settles_at_its_deadline():
    assert LATE_A.settlement_time == at(6, 2) == MISSED_A.settlement_time
    # Without a deadline (a row made by hand) the delivery is all there is, as in SQL.
    assert dataclasses.replace(LATE_A, deadline=None).settlement_time == at(6, 20)


def test_a_promise_dropped_after_its_deadline_is_broken_at_the_deadline():
    # Due 06-01, dropped on 06-20: it was broken when 06-01 ended, so it stands before B and C
    # (kept on 06-10 and 06-15) and June's current streak is theirs, 2, as if it were a miss.
    dropped_late = row("A", D, (6, 1), made=at(5, 20), settled=at(6, 20))
    assert dropped_late.settlement_time == at(6, 2)
    june = dict(period_from=date(2024, 6, 1), period_to=date(2024, 6, 30), as_of=at(6, 25))
    record = track_record([dropped_late, *KEPT_AFTER_A], **june)
    assert (record["dropped"], record["streak_current"], record["streak_longest"]) == (1, 2, 2)
    # Dropped before its deadline, it is settled when it was dropped.
    dropped_early = row("A", D, (6, 1), made=at(5, 20), settled=at(5, 28))
    assert dropped_early.settlement_time == at(5, 28)


def test_delivering_late_is_not_punished_more_than_never_delivering():
    # Scenario 1: while A is open past its deadline it is a miss at 06-02, before B and C, and
    # June's current streak is 2. Delivering A late on 06-20 must leave it there (broken at
    # 06-02), not move it after B and C, which would make the streak 0.
    june = dict(period_from=date(2024, 6, 1), period_to=date(2024, 6, 30), as_of=at(6, 25))
    missed = track_record([MISSED_A, *KEPT_AFTER_A], **june)
    late = track_record([LATE_A, *KEPT_AFTER_A], **june)
    assert (missed["streak_current"], missed["streak_longest"]) == (2, 2)
    assert (late["streak_current"], late["streak_longest"]) == (2, 2)
    # The trust evidence dates from the deadline either way: the same score.
    assert late["trust_score"] == pytest.approx(missed["trust_score"], rel=1e-12)


def test_a_late_delivery_after_the_period_leaves_its_record_alone():
    # Scenario 2: May's record, computed when May ended (as_of = its end). A, due 05-20, was
    # still open then: a miss at 05-21, broken evidence of May. Delivered late on 06-10, it
    # must still be May's broken promise at 05-21: the streaks and trust of May do not change
    # (only its count moves from missed to late).
    kept = row("K", E, (5, 25), made=at(5, 1), delivered=at(5, 24))
    before = [row("A", M, (5, 20), made=at(5, 1), settled=at(5, 21)), kept]
    after = [row("A", L, (5, 20), made=at(5, 1), delivered=at(6, 10), slip=21), kept]
    may = dict(period_from=date(2024, 5, 1), period_to=date(2024, 5, 31), as_of=at(6, 1))
    then, now = track_record(before, **may), track_record(after, **may)
    assert (then["missed"], now["missed"], now["delivered_late"]) == (1, 0, 1)
    for key in ("streak_current", "streak_longest"):
        assert now[key] == then[key], key
    assert (now["streak_current"], now["streak_longest"]) == (1, 1)
    assert now["trust_score"] == pytest.approx(then["trust_score"], rel=1e-12)
    # Kept K 8 days before 06-01 (0.9403), broken A 11 days before (0.9188): 1.9403 / 3.8591.
    # Settled at its delivery instead, A would not be evidence of May at all (0.66).
    assert now["trust_score"]["estimate"] == pytest.approx(0.5028, abs=1e-4)


def test_a_miss_settles_at_its_deadline():
    # "m" was never delivered; its deadline (end of 06-05) passed before "k1" and "k2" were
    # delivered, so the miss sits before them and the current streak is 2, not 0.
    rows = [
        row("m", M, (6, 5), settled=at(6, 6)),
        row("k1", T, (6, 10), delivered=at(6, 10, 9)),
        row("k2", E, (6, 20), delivered=at(6, 18)),
    ]
    assert streaks(settlement_order(rows, until=at(7, 1))) == (2, 2)


def test_streak_stops_at_the_end_of_the_period():
    # The miss settles on 07-02, after the period [06-01, 06-30]: it is not in June's streak,
    # but it is in July's.
    rows = [
        row("k", E, (6, 20), delivered=at(6, 18)),
        row("m", M, (7, 1), settled=at(7, 2)),
    ]
    june = track_record(rows, period_from=date(2024, 6, 1), period_to=date(2024, 6, 30),
                        as_of=at(7, 1))  # fmt: skip
    july = track_record(rows, period_from=date(2024, 7, 1), period_to=date(2024, 7, 31),
                        as_of=at(8, 1))  # fmt: skip
    assert (june["streak_current"], june["streak_longest"]) == (1, 1)
    assert (july["streak_current"], july["streak_longest"]) == (0, 1)


def test_a_miss_on_the_last_day_of_the_period_is_in_its_streak():
    # Deadline at the end of 06-30 = 07-01 00:00, which is the end of the period itself.
    rows = [row("k", E, (6, 20), delivered=at(6, 18)), row("m", M, (6, 30), settled=at(7, 1))]
    record = track_record(rows, period_from=date(2024, 6, 1), period_to=date(2024, 6, 30),
                          as_of=at(7, 1))  # fmt: skip
    assert record["streak_current"] == 0


def test_the_period_ends_at_the_teams_midnight():
    # A team in New York (UTC-4 in June): its miss on 06-30 settles at its deadline, 07-01 00:00
    # local = 04:00 UTC, after the UTC end of June but within the team's June.
    new_york = ZoneInfo("America/New_York")
    deadline = datetime(2024, 7, 1, tzinfo=new_york)
    rows = [row("k", E, (6, 20), delivered=at(6, 18)), row("m", M, (6, 30), settled=deadline)]
    june = dict(period_from=date(2024, 6, 1), period_to=date(2024, 6, 30), as_of=at(7, 2))
    assert track_record(rows, **june)["streak_current"] == 1
    assert track_record(rows, **june, tz=new_york)["streak_current"] == 0


def test_streaks_skip_descoped_and_pending():
    assert streaks([E, S, T, P, E]) == (3, 3)
    assert streaks([E, E, D, T, M, E]) == (1, 2)
    assert streaks([]) == (0, 0)


def test_percentile_is_linear_interpolation():
    # Ten values 1..10: p90 at position 9 * 0.9 = 8.1 -> 9 + 0.1 * (10 - 9) = 9.1
    # (nearest rank would say 9); median at 4.5 -> 5.5.
    values = list(range(1, 11))
    assert percentile(values, 0.9) == pytest.approx(9.1)
    assert percentile(values, 0.5) == pytest.approx(5.5)
    assert percentile([7], 0.9) == 7.0
    assert percentile([], 0.9) is None
    with pytest.raises(ValueError):
        percentile(values, 1.5)


def test_first_win_needs_a_kept_delivery():
    rows = [
        row("late", L, (6, 5), made=at(6, 1), delivered=at(6, 7), slip=2),
        row("kept", T, (6, 20), made=at(6, 10), delivered=at(6, 20, 12)),
    ]
    # First promise 06-01 00h, first kept delivery 06-20 12h: 19.5 days; the late one is no win.
    assert first_win_days(rows, until=at(7, 1)) == pytest.approx(19.5)
    assert first_win_days(rows, until=at(6, 15)) is None


def test_month_starts_cross_the_year():
    assert month_starts(date(2024, 2, 29), 3) == [date(2023, 12, 1), date(2024, 1, 1),
                                                  date(2024, 2, 1)]  # fmt: skip
    assert month_starts(date(2024, 2, 29), 0) == []


def test_bad_period_is_rejected():
    with pytest.raises(ValueError):
        figures(None, teams=["core"], period_from=date(2024, 7, 1), period_to=date(2024, 6, 1),
                as_of=AS_OF)  # fmt: skip


def test_streak_rule_over_marks_agrees_with_the_reference():
    # The service reads settlement order as marks, '0' kept and '1' broken (descoped and
    # pending rows are never in the sequence): the same runs as the reference's walk.
    assert streak_runs("") == (0, 0)
    assert streak_runs("0100") == (2, 2)
    assert streak_runs("00100001") == (0, 4)
    rng = random.Random(7)
    for _ in range(200):
        seq = rng.choices([E, T, L, M, D], k=rng.randrange(30))
        marks = "".join("0" if o in (E, T) else "1" for o in seq)
        assert streak_runs(marks) == streaks(seq), marks


def _counted(due=0, kept=0, pending=0):
    return {"commitments_due": due, "delivered_early": kept, "delivered_on_time": 0,
            "pending": pending}  # fmt: skip


TODAY = date(2024, 9, 20)


@pytest.mark.parametrize(
    ("counted", "next_due", "promised", "words", "short"),
    [
        (_counted(4, 3), None, True, "75% on time · 3 of 4 kept", "75%"),
        (_counted(3, 2, pending=1), date(2024, 10, 15), True, "67% on time · 2 of 3 kept",
         "67%"),
        (_counted(pending=2), date(2024, 10, 15), True,
         "nothing due yet · 2 promises are pending, first due 15 Oct", "next due 15 Oct"),
        (_counted(pending=1), date(2025, 1, 3), True,
         "nothing due yet · 1 promise is pending, first due 3 Jan 2025", "next due 3 Jan 2025"),
        # An early delivery promised for a day still ahead, outside the period: not due yet.
        (_counted(), date(2024, 10, 15), True, "nothing due yet · next due 15 Oct",
         "next due 15 Oct"),
        (_counted(), None, False, "no promises yet", "no promises yet"),
        (_counted(), None, True, "nothing due in this period", "none due"),
    ],
)  # fmt: skip
def test_headline_words(counted, next_due, promised, words, short):
    found = headline(counted, next_due=next_due, promised=promised, today=TODAY)
    assert (found.words, found.short) == (words, short)
    assert found.rate == (counted["delivered_early"] / counted["commitments_due"]
                          if counted["commitments_due"] else None)  # fmt: skip
