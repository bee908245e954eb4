"""What became of a commitment: the vocabulary shared by the ledger rules and the figures.

`Commitment` is the input row of the figures (`ledger.metrics`, `ledger.trust`). It is a plain
value so that the figures stay pure: the caller reads the ledger, chooses which promise to judge
(first or latest) and hands over these rows.
"""

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class Outcome(StrEnum):
    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"
    MISSED = "missed"
    DROPPED = "dropped"
    DESCOPED = "descoped"
    PENDING = "pending"
    # Not commitments: completed with no promise. Counted as unpromised deliveries only.
    UNPROMISED = "unpromised"
    # Completed, unpromised, and names other items: its delivery belongs to them.
    LINKED = "linked"


# Frozen so that no caller can widen the definition of a kept promise by accident.
KEPT = frozenset({Outcome.EARLY, Outcome.ON_TIME})
BROKEN = frozenset({Outcome.LATE, Outcome.MISSED, Outcome.DROPPED})
DELIVERED = frozenset({Outcome.EARLY, Outcome.ON_TIME, Outcome.LATE})
# Descoped is settled in the ledger's sense too, but it is neither kept nor broken, so the
# figures never count it as due.
SETTLED = KEPT | BROKEN


@dataclass(frozen=True, slots=True)
class Commitment:
    key: str
    team: str
    # The promise judged against, already chosen (first or latest) by the caller.
    promised_date: date
    # When the promise was made, tz-aware UTC.
    promised_at: datetime | None
    outcome: Outcome
    # UTC; for a missed commitment this is its deadline, not the moment someone noticed.
    settled_at: datetime | None
    delivered_at: datetime | None
    # Late deliveries only.
    slip_days: int | None
    small: bool = False
    excluded: bool = False
    # The end of the promised day in the team's timezone (the ledger's `deadline`, UTC). A late
    # delivery is settled here, as broken: the promise was broken when its deadline passed.
    deadline: datetime | None = None

    @property
    def settlement_time(self) -> datetime | None:
        """When the commitment was settled: its place in settlement order and the time its
        trust evidence dates from (ledger.tables.settle_instant is the same for the database).

        A late delivery settles at its deadline (when the promise was broken, as a miss would
        have), not at the delivery, so delivering late never sits later than not delivering;
        so does a promise dropped after its deadline.
        Otherwise `settled_at`; a delivery settles it even if settled_at is unset. A late row
        without a deadline (made by hand) falls back to those, as the SQL does.
        """
        if self.outcome is Outcome.LATE and self.deadline is not None:
            return self.deadline
        settled = self.settled_at if self.settled_at is not None else self.delivered_at
        if (
            self.outcome is Outcome.DROPPED
            and self.deadline is not None
            and settled is not None
            and settled > self.deadline
        ):
            return self.deadline  # dropped after the deadline: broken at the deadline
        return settled
