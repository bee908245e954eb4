"""The trust score: a Beta reputation of keeping promises, with a forgetting factor.

This is the Beta reputation system of Jøsang and Ismail (2002), "The Beta Reputation System",
15th Bled Electronic Commerce Conference. Each settled commitment is evidence: a kept one
(early or on time) adds to alpha, a broken one (late, missed, dropped) adds to beta, starting
from the uniform prior Beta(1, 1). Their forgetting factor becomes a half-life here: evidence
settled `age` days before `as_of` weighs 0.5 ** (age / half_life_days). See docs/metrics.md.

The weights are summed in the database (ledger.sql_figures.settlement_pass, with
ledger.sql_dialect.Dialect.recency_weight); `beta_reputation` turns the two sums into the score.
"""

from dataclasses import asdict, dataclass

DEFAULT_HALF_LIFE_DAYS = 90.0
# Beta(1, 1): a team with no record is equally likely to keep or break a promise.
PRIOR_KEPT = 1.0
PRIOR_BROKEN = 1.0
# A 90% credible interval.
LOW_QUANTILE = 0.05
HIGH_QUANTILE = 0.95


@dataclass(frozen=True, slots=True)
class TrustScore:
    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


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
        low=float(beta().ppf(LOW_QUANTILE, a, b)),
        high=float(beta().ppf(HIGH_QUANTILE, a, b)),
    )


def beta():
    """scipy's Beta distribution, imported on first use: scipy.stats takes about a second to
    import, which a worker draining deliveries never needs (the web app imports it at start)."""
    from scipy.stats import beta as distribution

    return distribution
