"""The trust score: a Beta reputation of keeping promises, with a forgetting factor.

This is the Beta reputation system of Jøsang and Ismail (2002), "The Beta Reputation System",
15th Bled Electronic Commerce Conference. Each settled commitment is evidence: a kept one
(early or on time) adds to alpha, a broken one (late, missed, dropped) adds to beta, starting
from the uniform prior Beta(1, 1). Their forgetting factor becomes a half-life here: evidence
settled `age` days before `as_of` weighs 0.5 ** (age / half_life_days). See docs/metrics.md.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from scipy.stats import beta as beta_distribution

from ledger.outcomes import BROKEN, KEPT, Commitment

DEFAULT_HALF_LIFE_DAYS = 90.0
# Beta(1, 1): a team with no record is equally likely to keep or break a promise.
PRIOR_KEPT = 1.0
PRIOR_BROKEN = 1.0
# A 90% credible interval.
LOW_QUANTILE = 0.05
HIGH_QUANTILE = 0.95

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TrustScore:
    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def recency_weight(age_days: float, half_life_days: float = DEFAULT_HALF_LIFE_DAYS) -> float:
    """Weight of evidence that is `age_days` old: 1 today, 0.5 after one half-life."""
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    # Clock skew can put a settlement a moment after as_of; it must not weigh more than 1.
    return 0.5 ** (max(age_days, 0.0) / half_life_days)


def weighted_evidence(
    commitments: Iterable[Commitment],
    *,
    as_of: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> tuple[float, float]:
    """Recency-weighted (kept, broken) over the commitments settled up to `as_of`."""
    kept = broken = 0.0
    for commitment in commitments:
        settled = commitment.settlement_time
        if commitment.excluded or settled is None or settled > as_of:
            continue
        weight = recency_weight((as_of - settled) / _DAY, half_life_days)
        if commitment.outcome in KEPT:
            kept += weight
        elif commitment.outcome in BROKEN:
            broken += weight
    return kept, broken


def beta_reputation(kept: float, broken: float) -> TrustScore:
    """Posterior mean and 90% interval of the on-time probability, from (weighted) counts.

    Takes plain numbers so that a SQL aggregate of the weights can feed it directly.
    """
    if kept < 0 or broken < 0:
        raise ValueError("evidence cannot be negative")
    a = PRIOR_KEPT + kept
    b = PRIOR_BROKEN + broken
    return TrustScore(
        estimate=a / (a + b),
        low=float(beta_distribution.ppf(LOW_QUANTILE, a, b)),
        high=float(beta_distribution.ppf(HIGH_QUANTILE, a, b)),
    )


def trust_score(
    commitments: Iterable[Commitment],
    *,
    as_of: datetime,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> TrustScore:
    kept, broken = weighted_evidence(commitments, as_of=as_of, half_life_days=half_life_days)
    return beta_reputation(kept, broken)
