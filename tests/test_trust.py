"""The trust score (Beta reputation with forgetting) against closed forms worked out by hand.

Beta(a, 1) has CDF x ** a, so its q-quantile is q ** (1 / a); Beta(1, b) has CDF
1 - (1 - x) ** b, so its q-quantile is 1 - (1 - q) ** (1 / b); Beta(a, 2) has CDF
(a + 1) x ** a - a x ** (a + 1). These let the tests check scipy's quantiles without scipy.

`beta_reputation` is the service's; the weighting is summed in SQL (tests/test_queries.py holds
it equal to the row-by-row reference used here, tests/reference_figures.py).
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from ledger.outcomes import Outcome
from ledger.trust import beta_reputation
from tests.reference_figures import (
    CommitmentValue,
    recency_weight,
    trust_score,
    weighted_evidence,
)

AS_OF = datetime(2024, 6, 30, tzinfo=UTC)


def settled(outcome: Outcome, days_ago: float, *, key: str = "", excluded: bool = False):
    when = AS_OF - timedelta(days=days_ago)
    return CommitmentValue(
        key=key or f"{outcome}-{days_ago}",
        team="core",
        promised_date=date(2024, 1, 1),
        promised_at=None,
        outcome=outcome,
        settled_at=when,
        delivered_at=when if outcome in {Outcome.EARLY, Outcome.ON_TIME, Outcome.LATE} else None,
        slip_days=None,
        excluded=excluded,
    )


def kept_today(n: int) -> list[CommitmentValue]:
    return [settled(Outcome.ON_TIME, 0, key=f"k{i}") for i in range(n)]


def test_a_new_team_starts_uncertain():
    # No evidence: the prior Beta(1, 1) is uniform, so the mean is 1/2 and the quantiles are q.
    score = trust_score([], as_of=AS_OF)
    assert score.estimate == 0.5
    assert score.low == pytest.approx(0.05, abs=1e-12)
    assert score.high == pytest.approx(0.95, abs=1e-12)
    assert score.as_dict() == pytest.approx({"estimate": 0.5, "low": 0.05, "high": 0.95})


def test_a_long_consistent_record_narrows_a_high_interval():
    # n kept today -> Beta(n + 1, 1): mean (n + 1) / (n + 2), quantiles q ** (1 / (n + 1)).
    widths = []
    for n in (5, 20, 100):
        score = trust_score(kept_today(n), as_of=AS_OF)
        a = n + 1
        assert score.estimate == pytest.approx(a / (a + 1))
        assert score.low == pytest.approx(0.05 ** (1 / a))
        assert score.high == pytest.approx(0.95 ** (1 / a))
        widths.append(score.high - score.low)
    assert widths[0] > widths[1] > widths[2]
    # 100 kept: 0.05 ** (1/101) = 0.9708, 0.95 ** (1/101) = 0.99949.
    assert score.low > 0.97
    assert widths[2] < 0.03


def test_one_miss_moves_it_a_little_and_more_misses_more():
    # 50 kept -> Beta(51, 1): mean 51/52 = 0.9808. One miss today -> Beta(51, 2): 51/53 = 0.9623.
    clean = trust_score(kept_today(50), as_of=AS_OF)
    one_miss = trust_score(kept_today(50) + [settled(Outcome.MISSED, 0)], as_of=AS_OF)
    assert clean.estimate == pytest.approx(51 / 52)
    assert one_miss.estimate == pytest.approx(51 / 53)
    assert 0 < clean.estimate - one_miss.estimate < 0.05
    # The quantiles of Beta(51, 2) put CDF (a + 1) x^a - a x^(a + 1) at 0.05 and 0.95.
    a = 51
    for x, q in ((one_miss.low, 0.05), (one_miss.high, 0.95)):
        assert (a + 1) * x**a - a * x ** (a + 1) == pytest.approx(q, abs=1e-9)
    assert one_miss.low < clean.low and one_miss.high < clean.high
    # Five misses today -> Beta(51, 6): 51/57 = 0.8947, clearly lower.
    misses = [settled(Outcome.MISSED, 0, key=f"m{i}") for i in range(5)]
    five = trust_score(kept_today(50) + misses, as_of=AS_OF)
    assert five.estimate == pytest.approx(51 / 57)
    assert five.high < one_miss.high


def test_late_and_dropped_count_as_broken_descoped_and_pending_not_at_all():
    rows = [
        settled(Outcome.EARLY, 0),
        settled(Outcome.LATE, 0),
        settled(Outcome.DROPPED, 0),
        settled(Outcome.DESCOPED, 0),
        settled(Outcome.PENDING, 0),
    ]
    # Kept 1 (early), broken 2 (late, dropped): Beta(2, 3), mean 2/5.
    assert weighted_evidence(rows, as_of=AS_OF) == pytest.approx((1.0, 2.0))
    assert trust_score(rows, as_of=AS_OF).estimate == pytest.approx(2 / 5)


def test_recency_weight_halves_every_half_life():
    assert recency_weight(0) == 1.0
    assert recency_weight(90) == pytest.approx(0.5)
    assert recency_weight(180) == pytest.approx(0.25)
    assert recency_weight(30, half_life_days=30) == pytest.approx(0.5)
    # A settlement stamped a moment after as_of weighs no more than one today.
    assert recency_weight(-1) == 1.0
    with pytest.raises(ValueError):
        recency_weight(1, half_life_days=0)


def test_an_old_miss_weighs_less_than_a_recent_one():
    # 10 kept today. A miss 360 days ago weighs 0.5 ** 4 = 1/16: Beta(11, 1.0625), mean
    # 11 / 12.0625 = 0.9119. The same miss today: Beta(11, 2), mean 11/13 = 0.8462.
    old = trust_score(kept_today(10) + [settled(Outcome.MISSED, 360)], as_of=AS_OF)
    recent = trust_score(kept_today(10) + [settled(Outcome.MISSED, 0)], as_of=AS_OF)
    assert old.estimate == pytest.approx(11 / 12.0625)
    assert recent.estimate == pytest.approx(11 / 13)
    assert old.estimate > recent.estimate


def test_old_kept_promises_fade_towards_the_prior():
    # One kept 90 days ago weighs 1/2: Beta(1.5, 1), mean 1.5 / 2.5 = 0.6; with a 30-day
    # half-life it weighs 1/8: Beta(1.125, 1), mean 1.125 / 2.125.
    rows = [settled(Outcome.EARLY, 90)]
    assert trust_score(rows, as_of=AS_OF).estimate == pytest.approx(0.6)
    short = trust_score(rows, as_of=AS_OF, half_life_days=30)
    assert short.estimate == pytest.approx(1.125 / 2.125)
    # Beta(1.125, 1) quantile: q ** (1 / 1.125).
    assert short.high == pytest.approx(0.95 ** (1 / 1.125))


def test_settlements_after_as_of_and_excluded_rows_are_ignored():
    rows = [
        settled(Outcome.MISSED, -5),  # five days in the future of as_of
        settled(Outcome.MISSED, 1, excluded=True),
    ]
    assert weighted_evidence(rows, as_of=AS_OF) == (0.0, 0.0)
    assert trust_score(rows, as_of=AS_OF).estimate == 0.5


def test_beta_reputation_from_aggregates():
    # One broken, no kept: Beta(1, 2), quantile 1 - (1 - q) ** (1/2).
    score = beta_reputation(0, 1)
    assert score.estimate == pytest.approx(1 / 3)
    assert score.low == pytest.approx(1 - 0.95**0.5)
    assert score.high == pytest.approx(1 - 0.05**0.5)
    with pytest.raises(ValueError):
        beta_reputation(-1, 0)
